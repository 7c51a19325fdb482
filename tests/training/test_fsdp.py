"""FSDP2 on 2 CPU processes (gloo): the same losses as one process, step by step, and a run
paused mid-epoch (step 4, the first of epoch 2 asked: should_pause is polled inside epochs only)
then resumed ends with the weights of one never paused."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import REPO

WORKER = str(Path(__file__).with_name("fsdp_worker.py"))


def launch(procs: int, mode: str, method: str, model, data, out: Path, port: int,
           distributed: str = "fsdp", head: str = "lm") -> None:
    cmd = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs),
            "--master_port", str(port), WORKER] if procs > 1 else [sys.executable, WORKER])
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*cmd, mode, method, str(model), str(data), str(out), distributed,
                           head], env=env, capture_output=True, text=True, cwd=REPO,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]


def losses(out: Path) -> list[float]:
    return [r["train_loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text()
                                         .splitlines()) if "train_loss" in r]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["full", "lora"])
def test_fsdp_two_processes_match_one_and_resume_exactly(tiny_model_dir, tiny_data_dir,
                                                         tmp_path, method):
    port = 29610 if method == "full" else 29630
    launch(1, "straight", method, tiny_model_dir, tiny_data_dir, tmp_path / "one", port)
    launch(2, "straight", method, tiny_model_dir, tiny_data_dir, tmp_path / "two", port + 1)
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == 6  # 9 examples, batch 4, 2 epochs
    assert max(abs(a - b) for a, b in zip(one, two)) < 1e-4, (one, two)
    name = "adapter_model" if method == "lora" else "model"
    a = load_file(tmp_path / "one" / "final" / f"{name}.safetensors")
    b = load_file(tmp_path / "two" / "final" / f"{name}.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)

    launch(2, "pause", method, tiny_model_dir, tiny_data_dir, tmp_path / "paused", port + 2)
    saved = sorted(p.name for p in (tmp_path / "paused" / "checkpoints").iterdir())
    assert "step-000004" in saved and not (tmp_path / "paused" / "final").exists(), saved
    launch(2, "resume", method, tiny_model_dir, tiny_data_dir, tmp_path / "paused", port + 3)
    assert (tmp_path / "paused" / "digest.txt").read_text() == \
        (tmp_path / "two" / "digest.txt").read_text()
    assert losses(tmp_path / "paused") == pytest.approx(two, abs=1e-6)


@pytest.mark.slow
def test_full_dpo_on_two_processes_matches_one(tiny_model_dir, tmp_path):
    """DPO's reference pass and steps under FSDP (and DDP): the same losses and weights as one
    process, and a paused and resumed FSDP run ends where one never paused does."""
    data = tmp_path / "pref"
    data.mkdir()
    rows = [{"input": {"messages": [{"role": "user", "content": f"Say hello to {n} ({i})"}]},
             "preferred_output": [{"role": "assistant", "content": f"Hello {n}, welcome!"}],
             "non_preferred_output": [{"role": "assistant", "content": "No. Go away."}]}
            for i, n in enumerate(["Ana", "Bo", "Cy", "Di", "Ed", "Flo", "Gus"] * 2)]
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:9]))
    (data / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[9:]))
    launch(1, "straight", "full-dpo", tiny_model_dir, data, tmp_path / "one", 29650)
    launch(2, "straight", "full-dpo", tiny_model_dir, data, tmp_path / "two", 29651)
    launch(2, "straight", "full-dpo", tiny_model_dir, data, tmp_path / "ddp", 29652, "ddp")
    one = losses(tmp_path / "one")
    assert len(one) == 6  # 9 pairs, batch 4, 2 epochs
    for other in ("two", "ddp"):
        assert max(abs(a - b) for a, b in zip(one, losses(tmp_path / other))) < 1e-4, other
    a = load_file(tmp_path / "one" / "final" / "model.safetensors")
    b = load_file(tmp_path / "two" / "final" / "model.safetensors")
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)
    launch(2, "pause", "full-dpo", tiny_model_dir, data, tmp_path / "paused", 29653)
    launch(2, "resume", "full-dpo", tiny_model_dir, data, tmp_path / "paused", 29654)
    assert (tmp_path / "paused" / "digest.txt").read_text() == \
        (tmp_path / "two" / "digest.txt").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["full", "lora"])
def test_a_classifier_head_on_two_processes_matches_one(tiny_model_dir, tiny_data_dir, tmp_path,
                                                        method):
    port = 29670 if method == "full" else 29680
    for procs, name in ((1, "one"), (2, "two")):
        launch(procs, "straight", method, tiny_model_dir, tiny_data_dir, tmp_path / name,
               port + procs, head="classifier")
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == 6
    assert max(abs(a - b) for a, b in zip(one, two)) < 1e-4, (one, two)
    from tunesmith.heads import load_head_model

    a, _ = load_head_model(tmp_path / "one" / "final")
    b, _ = load_head_model(tmp_path / "two" / "final")
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(y.float(), x.float(), rtol=1e-3, atol=1e-4, msg=k)
