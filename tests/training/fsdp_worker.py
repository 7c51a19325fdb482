"""Run by torchrun from test_fsdp.py: train with FSDP2 (or DDP, or, with WORLD_SIZE 1, alone),
pausing at step 3 when asked; rank 0 writes the final weights' digest."""

import hashlib
import os
import sys

from tunesmith.config import TrainConfig
from tunesmith.training import train
from tunesmith.training.hooks import TrainHooks, TrainingPaused

mode, method, model, data, out = sys.argv[1:6]
distributed = sys.argv[6] if len(sys.argv) > 6 else "fsdp"
head = sys.argv[7] if len(sys.argv) > 7 else "lm"
calls = {"n": 0}


def pause_at_3() -> bool:
    calls["n"] += 1
    return mode == "pause" and calls["n"] == 3


config = TrainConfig(train_file=f"{data}/train.jsonl", val_file=f"{data}/validation.jsonl",
                     out=out, model=model, epochs=2, batch_size=4, quiet=True, precision="fp32",
                     method=method, lr=1e-3, distributed=distributed, resume=mode == "resume",
                     head=head)
try:
    train(config, TrainHooks(should_pause=pause_at_3))
except TrainingPaused:
    sys.exit(0)
if os.environ.get("RANK", "0") == "0":
    from safetensors.torch import load_file

    name = "adapter_model" if method in ("lora", "dpo") else "model"
    weights = load_file(f"{out}/final/{name}.safetensors")
    digest = hashlib.sha256()
    for key in sorted(weights):
        digest.update(key.encode() + weights[key].numpy().tobytes())
    with open(f"{out}/digest.txt", "w") as f:
        f.write(digest.hexdigest())
