import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import REPO, shared


def train_cmd(model, data, out, *extra):
    return [sys.executable, "-m", "tunesmith", "train", "--train", str(data), "--model", str(model),
            "--out", str(out), "--epochs", "4", "--batch-size", "8", "--precision", "fp32",
            "--quiet", *extra]


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tiny_model_dir, tmp_path):
    lines = shared("sst2", "chat", "train.jsonl").read_text().splitlines()[:160]
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    subprocess.run(train_cmd(tiny_model_dir, data, tmp_path / "a"), check=True, cwd=REPO, env=env,
                   capture_output=True, timeout=600)

    proc = subprocess.Popen(train_cmd(tiny_model_dir, data, tmp_path / "b"), cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = tmp_path / "b" / "checkpoints" / "epoch-001" / "state.json"
    deadline = time.monotonic() + 300
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert marker.exists() and not (tmp_path / "b" / "final").exists()
    leftovers = [p.name for p in (tmp_path / "b" / "checkpoints").iterdir() if p.name.startswith(".")]
    resumed = subprocess.run(train_cmd(tiny_model_dir, data, tmp_path / "b", "--resume"), cwd=REPO,
                             env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stderr
    a = load_file(tmp_path / "a" / "final" / "adapter_model.safetensors")
    b = load_file(tmp_path / "b" / "final" / "adapter_model.safetensors")
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6)
    # a checkpoint being written when the kill came is a hidden temp folder, never a checkpoint,
    # and resuming clears it away
    assert all(name.endswith(".tmp") for name in leftovers)
    assert not [p for p in (tmp_path / "b" / "checkpoints").iterdir() if p.name.startswith(".")]
