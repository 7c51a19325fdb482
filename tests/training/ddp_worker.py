"""Run by torchrun from test_ddp.py: train, then record this rank's final weights."""

import hashlib
import sys

import torch

from tunesmith.config import TrainConfig
from tunesmith.training import train

model, data, out, report = sys.argv[1:5]
result = train(TrainConfig(train_file=f"{data}/train.jsonl", val_file=f"{data}/validation.jsonl",
                           out=out, model=model, epochs=2, batch_size=4, quiet=True,
                           precision="fp32", method="full", lr=1e-3))
digest = hashlib.sha256()
for name, p in sorted(result.model.state_dict().items()):
    digest.update(name.encode() + p.detach().cpu().numpy().tobytes())
rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else int(
    __import__("os").environ.get("RANK", "0"))
with open(f"{report}/rank-{rank}.txt", "w") as f:
    f.write(digest.hexdigest())
