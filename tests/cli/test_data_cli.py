"""The `tunesmith data` commands as a user runs them (one real subprocess; the rest in-process)."""

import json
import subprocess
import sys

from tests.conftest import ASSETS, REPO, shared
from tunesmith.cli import COMMANDS, build_parser, main


def test_subprocess_check_and_exit_code():
    proc = subprocess.run([sys.executable, "-m", "tunesmith", "data", "check",
                           str(ASSETS / "chat_tiny.jsonl"), "--json"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["valid"] and doc["examples"] == 12 and doc["tokens"]["examples"] == 12


def test_check_shared_sets_exits_zero_with_counts(capsys):
    for name, task in (("sst2", "classification"), ("banking77", "classification"),
                       ("wnut17", "ner"), ("instruct_selfinstruct_seed", "chat")):
        path = shared(name, "chat", "train.jsonl")
        assert main(["data", "check", str(path), "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        expected = len(path.read_text().splitlines())
        assert (doc["task"], doc["examples"], doc["errors"]) == (task, expected, 0), name


def test_prepare_then_check_every_split(tmp_path, capsys):
    for name, task in (("banking77", "classification"), ("wnut17", "ner")):
        out = tmp_path / name
        assert main(["data", "prepare", str(shared(name, "task", "train.jsonl")), "--task", task,
                     "--out", str(out)]) == 0
        capsys.readouterr()
        for split in ("train", "validation", "test"):
            argv = ["data", "check", str(out / f"{split}.jsonl"), "--json"]
            if split != "train":
                argv += ["--train", str(out / "train.jsonl")]
            assert main(argv) == 0, (name, split)
            assert json.loads(capsys.readouterr().out)["task"] == task


def test_human_output_lists_problems_then_verdict(tmp_path, capsys):
    lines = (ASSETS / "chat_tiny.jsonl").read_text().splitlines()
    lines[3] = "{broken"
    (tmp_path / "b.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["data", "check", str(tmp_path / "b.jsonl")]) == 1
    out = capsys.readouterr().out
    assert "b.jsonl:4: invalid JSON" in out
    assert "Tokens per example" in out and "n_epochs auto" in out
    assert out.rstrip().splitlines()[-1].startswith("Result: INVALID: 1 errors")


def test_every_command_is_registered():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)
