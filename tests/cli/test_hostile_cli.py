"""The command line never overwrites an input, never writes into someone else's folder, and
refuses out-of-range arguments before any work (issue 9, classes 3 and 7). In-process."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import ASSETS
from tunesmith.cli import main


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "internal error" not in err
    return code, out, err


def _prepared(tmp_path, capsys, name="d"):
    out = tmp_path / name
    code, _, _ = _run(capsys, "data", "prepare", ASSETS / "chat_tiny.jsonl", "--task",
                      "classification", "--out", out, "--val", "0.25", "--test", "0")
    assert code == 0
    return out


def test_prepare_never_overwrites_its_own_input(tmp_path, capsys):
    d = _prepared(tmp_path, capsys)
    before = (d / "train.jsonl").read_bytes()
    code, _, err = _run(capsys, "data", "prepare", d / "train.jsonl", "--task", "classification",
                        "--out", d, "--force")
    assert code == 2 and "would overwrite the input" in err
    assert (d / "train.jsonl").read_bytes() == before


def test_prepare_into_a_folder_of_other_files_needs_force(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    (mine / "train.jsonl").write_text("my own training file\n")
    args = ("data", "prepare", ASSETS / "chat_tiny.jsonl", "--task", "classification",
            "--out", mine)
    code, _, err = _run(capsys, *args)
    assert code == 2 and "already holds files tunesmith did not write (notes.txt, train.jsonl)" \
        in err and "--force" in err
    assert (mine / "train.jsonl").read_text() == "my own training file\n"
    code, _, _ = _run(capsys, *args, "--force")
    assert code == 0 and (mine / "notes.txt").read_text() == "keep me"
    code, _, _ = _run(capsys, *args)  # now a prepared folder: preparing again is fine
    assert code == 0


def test_out_paths_that_are_files(tmp_path, capsys):
    (tmp_path / "f.txt").write_text("x")
    for argv in (["data", "prepare", ASSETS / "chat_tiny.jsonl", "--task", "classification",
                  "--out", tmp_path / "f.txt"],
                 ["data", "prepare", ASSETS / "chat_tiny.jsonl", "--task", "classification",
                  "--out", tmp_path / "f.txt" / "sub"],
                 ["train", "--train", ASSETS / "chat_tiny.jsonl", "--out", tmp_path / "f.txt"],
                 ["compare", "--data", tmp_path, "--out", tmp_path / "f.txt"],
                 ["export", tmp_path, "--format", "hf", "--out", tmp_path / "f.txt" / "x"]):
        code, _, err = _run(capsys, *argv)
        assert code == 2, argv
        assert "f.txt" in err and ("is a file" in err or "exists" in err), err
    assert (tmp_path / "f.txt").read_text() == "x"


def test_train_refuses_a_folder_with_the_users_files(tmp_path, capsys, tiny_model_dir):
    d = _prepared(tmp_path, capsys)
    run = tmp_path / "results"
    (run / "final").mkdir(parents=True)
    (run / "final" / "my-model.bin").write_bytes(b"precious")
    code, _, err = _run(capsys, "train", "--data", d, "--model", tiny_model_dir, "--out", run,
                        "--quiet")
    assert code == 2 and "already holds files tunesmith did not write (final)" in err
    assert (run / "final" / "my-model.bin").read_bytes() == b"precious"
    code, _, err = _run(capsys, "train", "--train", d / "train.jsonl", "--model",
                        tiny_model_dir, "--out", d, "--quiet")
    assert code == 2  # the data folder is not a run folder


def test_compare_refuses_to_write_over_its_data(tmp_path, capsys):
    d = _prepared(tmp_path, capsys, "rep/data")
    before = (d / "train.jsonl").read_bytes()
    code, _, err = _run(capsys, "compare", "--data", d, "--out", tmp_path / "rep")
    assert code == 2 and "would overwrite the input" in err
    assert (d / "train.jsonl").read_bytes() == before
    mine = tmp_path / "mine"
    (mine / "run").mkdir(parents=True)
    (mine / "run" / "notes.md").write_text("mine")
    code, _, err = _run(capsys, "compare", "--data", d, "--out", mine)
    assert code == 2 and (mine / "run" / "notes.md").read_text() == "mine"


def test_cost_plot_cannot_replace_the_data(tmp_path, capsys):
    d = _prepared(tmp_path, capsys)
    code, _, err = _run(capsys, "cost", "--data", d / "test.jsonl", "--plot", d / "test.jsonl")
    assert code == 2 and "would overwrite the input" in err


@pytest.mark.parametrize("argv,flag", [
    (["compare", "--data", "d", "--requests-per-month", "-5"], "--requests-per-month"),
    (["compare", "--data", "d", "--max-test", "0"], "--max-test"),
    (["compare", "--data", "d", "--epochs", "0"], "--epochs"),
    (["compare", "--data", "d", "--shots", "0,-1"], "--shots"),
    (["eval", "--data", "d", "--batch-size", "0"], "--batch-size"),
    (["eval", "--data", "d", "--shots", "-1"], "--shots"),
    (["eval", "--data", "d", "--max-examples", "0"], "--max-examples"),
    (["eval", "--data", "d", "--seed", "-1"], "--seed"),
    (["data", "check", "f", "--max-seq-len", "0"], "--max-seq-len"),
    (["data", "prepare", "f", "--task", "chat", "--out", "o", "--val", "1.5"], "--val"),
    (["data", "prepare", "f", "--task", "chat", "--out", "o", "--test", "nan"], "--test"),
    (["cost", "--data", "d", "--requests-per-month", "-1"], "--requests-per-month"),
    (["serve", "--port", "99999"], "--port"),
    (["serve", "--port", "0"], "--port"),
    (["serve", "--max-batch", "0"], "--max-batch"),
    (["serve", "--max-upload-mb", "inf"], "--max-upload-mb"),
    (["serve", "--default-max-tokens", "0"], "--default-max-tokens"),
])
def test_out_of_range_arguments_exit_2_naming_the_flag(capsys, argv, flag):
    with pytest.raises(SystemExit) as e:
        main(argv)
    _, err = capsys.readouterr()
    assert e.value.code == 2 and f"argument {flag}" in err, err


@pytest.mark.parametrize("flag,value", [("--lr", "inf"), ("--lr", "nan"), ("--max-seq-len", "0"),
                                        ("--seed", str(2**40)), ("--weight-decay", "-1"),
                                        ("--eval-every", "-2"), ("--lora-dropout", "1.5")])
def test_train_values_out_of_range_exit_2_naming_the_flag(capsys, tmp_path, flag, value):
    """Train's flags come from TrainConfig; its checks (the same for a config file or a job
    request) name the flag."""
    code, _, err = _run(capsys, "train", "--train", tmp_path / "none.jsonl", flag, value)
    assert code == 2 and flag in err, err


def test_every_train_config_field_is_a_flag():
    import dataclasses

    from tunesmith.cli.train import DATA_FIELDS, GROUPS
    from tunesmith.config import TrainConfig

    flagged = [name for names in GROUPS.values() for name in names]
    assert sorted(flagged + list(DATA_FIELDS)) == sorted(f.name for f in
                                                         dataclasses.fields(TrainConfig))


def test_serve_checks_before_it_announces(tmp_path, capsys, tiny_model_dir):
    (tmp_path / "file").write_text("x")
    code, out, err = _run(capsys, "serve", "--home", tmp_path / "file", "--model", tiny_model_dir)
    assert code == 2 and "--home" in err and "is a file" in err and not out
    code, out, err = _run(capsys, "serve", "--home", tmp_path / "h", "--model",
                          tmp_path / "no-such-model")
    assert code == 2 and "no-such-model" in err and not out
    keys = tmp_path / "keys"
    keys.write_text("k1 alpha\nk1 beta\n")
    code, out, err = _run(capsys, "serve", "--home", tmp_path / "h", "--model", tiny_model_dir,
                          "--keys", keys)
    assert code == 2 and "keys:2" in err and "k1" not in err.replace("keys", "") and not out
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, out, err = _run(capsys, "serve", "--home", tmp_path / "h", "--model",
                              tiny_model_dir, "--port", port, "--no-worker")
    assert code == 2 and f"port {port} on 127.0.0.1 is already in use" in err
    assert "tunesmith serve:" not in out  # no banner for a server that never listened


@pytest.mark.parametrize("table,expected", [
    ("openai: [1, 2]", "'openai' must be a mapping"),
    ("openai: {m: x}", "openai.m: training"),
    ("openai: {m: {training: .nan}}", "must be non-negative numbers"),
    ("{{{: [", "p.yaml:1: not valid YAML"),
    ("- 1\n- 2", "a price table is a YAML mapping"),
])
def test_broken_price_tables(tmp_path, capsys, table, expected):
    (tmp_path / "p.yaml").write_text(table + "\n")
    code, _, err = _run(capsys, "data", "check", ASSETS / "chat_tiny.jsonl", "--prices",
                        tmp_path / "p.yaml")
    assert code == 2 and expected in err, err


def test_price_table_without_this_machines_hardware(tmp_path):
    from tunesmith.errors import UsageError
    from tunesmith.pricing import Machine, load_prices

    (tmp_path / "p.yaml").write_text("openai: {m: {training: 1, base_input: 1, base_output: 1, "
                                     "ft_input: 1, ft_output: 1}}\n")
    with pytest.raises(UsageError, match="no self_hosted entry .* describes this machine "
                                         r"\(2 CPU cores\).*--machine"):
        load_prices(tmp_path / "p.yaml").machine(None, Machine("cpu", "cpu", 2))


def test_compare_on_a_loose_file_says_what_it_needs(tmp_path, capsys):
    code, _, err = _run(capsys, "compare", "--data", ASSETS / "chat_tiny.jsonl", "--out",
                        tmp_path / "rep")
    assert code == 2 and "no training examples" in err and not (tmp_path / "rep").exists()
