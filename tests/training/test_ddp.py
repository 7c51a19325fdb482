import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_two_cpu_processes_end_with_identical_weights(tiny_model_dir, tiny_data_dir, tmp_path):
    report = tmp_path / "report"
    report.mkdir()
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_port", "29533", str(Path(__file__).with_name("ddp_worker.py")),
         str(tiny_model_dir), str(tiny_data_dir), str(out), str(report)],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    digests = [(report / f"rank-{r}.txt").read_text() for r in (0, 1)]
    assert digests[0] == digests[1]
    # only rank 0 wrote: one metrics record per step (9 examples / batch 4 = 3 steps x 2 epochs)
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()
             if "train_loss" in json.loads(x)]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert (out / "final" / "model.safetensors").is_file()
