"""`migrate inventory` and `migrate record` against real servers: `tunesmith serve` standing in
for OpenAI (a model fine-tuned there through the `openai` client), and a scripted server of our
own for the failures a provider can answer with (429 + Retry-After, 401, 403, 404)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time

import pytest

from tests.endpoints.scripted import ScriptedServer
from tests.serve.conftest import (
    Server,
    service_data,  # noqa: F401 - a fixture
    wait_for,
)
from tunesmith.cli import main
from tunesmith.data.check import check_file

KEY_ENV = "TEST_MIGRATE_KEY"
SECRET = "key-alpha"  # tests/serve/conftest.py's key of project alpha


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory, tiny_model_dir, service_data):  # noqa: F811
    """A live `tunesmith serve` with one model fine-tuned through the openai client."""
    server = Server(tmp_path_factory.mktemp("svc"), tiny_model_dir).start()
    client = server.client()
    train = client.files.create(file=open(service_data / "train.jsonl", "rb"),
                                purpose="fine-tune")
    val = client.files.create(file=open(service_data / "validation.jsonl", "rb"),
                              purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model=str(server.model), training_file=train.id, validation_file=val.id,
        suffix="support", seed=0, method={"type": "supervised", "supervised": {
            "hyperparameters": {"n_epochs": 3, "batch_size": 2,
                                "learning_rate_multiplier": 4}}})
    job = wait_for(lambda: (j := client.fine_tuning.jobs.retrieve(job.id)).status in
                   {"succeeded", "failed"} and j)
    assert job.status == "succeeded", server.log()[-2000:]
    yield server, client, job
    server.stop()


@pytest.fixture
def env(monkeypatch):
    """The key in the environment. (The endpoint cache stays in the shared test home: its keys
    hold the server's URL, and every test's server has a port of its own.)"""
    monkeypatch.setenv(KEY_ENV, SECRET)


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and SECRET not in out + err
    return code, out, err


def test_inventory_lists_the_fine_tune_with_its_days_left_and_downloads_its_files(
        fine_tuned, env, tmp_path, capsys):
    server, client, job = fine_tuned
    table = tmp_path / "shutdowns.yaml"
    table.write_text(f"""models:
  "{server.model}":
    shutdown: "2027-01-14"
    notice: "2026-10-14"
    source: https://example.com/notice
""")
    code, out, _ = _run(capsys, "migrate", "inventory", "--base-url", server.url,
                        "--api-key-env", KEY_ENV, "--shutdowns", table, "--download",
                        tmp_path / "dl", "--json")
    assert code == 0
    doc = json.loads(out)
    [row] = [f for f in doc["fine_tunes"] if f["model"] == job.fine_tuned_model]
    assert row["job"] == job.id and row["base"] == str(server.model)
    assert row["suffix"] == "support" and row["method"] == "supervised"
    assert row["trained_tokens"] == job.trained_tokens
    assert row["training_file"] == job.training_file and row["validation_file"]
    assert row["days_left"] == (dt.date(2027, 1, 14) - dt.date.today()).days
    assert row["shutdown_source"] == "https://example.com/notice"
    assert row["hyperparameters"]["n_epochs"] == 3
    training = row["downloads"]["training_file"]
    assert training["check"]["ok"] and training["check"]["examples"] == 40
    assert (tmp_path / "dl" / job.id / "training.jsonl").read_bytes() == \
        client.files.content(job.training_file).read()
    assert json.loads((tmp_path / "dl" / job.id / "job.json").read_text())["id"] == job.id
    assert all(not f["model"] or f["model"].startswith("ft:") for f in doc["fine_tunes"])

    # without a table entry: "date unknown", never a guess; the table's own dates as text
    code, out, _ = _run(capsys, "migrate", "inventory", "--base-url", server.url,
                        "--api-key-env", KEY_ENV)
    assert code == 0 and "date unknown" in out and job.fine_tuned_model in out
    assert "new fine-tuning jobs stop on 2027-01-06" in out


def test_a_deleted_training_file_is_listed_as_missing(fine_tuned, env, tmp_path, capsys,
                                                       service_data):  # noqa: F811
    server, client, _ = fine_tuned
    upload = client.files.create(file=open(service_data / "train.jsonl", "rb"),
                                 purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=str(server.model), training_file=upload.id,
                                         hyperparameters={"n_epochs": 1})
    wait_for(lambda: client.fine_tuning.jobs.retrieve(job.id).status in {"succeeded", "failed"})
    client.files.delete(upload.id)
    code, out, _ = _run(capsys, "migrate", "inventory", "--base-url", server.url,
                        "--api-key-env", KEY_ENV, "--download", tmp_path / "dl", "--json")
    assert code == 0
    [row] = [f for f in json.loads(out)["fine_tunes"] if f["job"] == job.id]
    assert "missing" in row["downloads"]["training_file"]


def test_record_keeps_what_chat_completions_answers_and_reruns_from_the_cache(
        fine_tuned, env, tmp_path, capsys, service_data):  # noqa: F811
    server, client, job = fine_tuned
    model = job.fine_tuned_model
    out_dir = tmp_path / "recorded"
    argv = ["migrate", "record", "--model", f"openai:{model}", "--inputs",
            service_data / "train.jsonl", "--out", out_dir, "--base-url", server.url,
            "--api-key-env", KEY_ENV, "--max-tokens", 6, "--json"]
    code, out, _ = _run(capsys, *argv)
    assert code == 0
    doc = json.loads(out)
    assert doc["answered"] == 40 and doc["from_cache"] == 0
    golden = [json.loads(x) for x in (out_dir / "golden.jsonl").read_text().splitlines()]
    rows = [json.loads(x) for x in (service_data / "train.jsonl").read_text().splitlines()]
    assert len(golden) == 40
    for row, kept in list(zip(rows, golden))[:8]:
        asked = row["messages"][:-1]
        reply = client.chat.completions.create(model=model, messages=asked, temperature=0,
                                               max_tokens=6)
        assert kept["messages"][:-1] == asked
        assert kept["messages"][-1] == {"role": "assistant",
                                        "content": reply.choices[0].message.content}
        assert kept["metadata"]["recorded_from"] == model
    answers = [json.loads(x) for x in (out_dir / "answers.jsonl").read_text().splitlines()]
    assert answers[0]["reference"] == rows[0]["messages"][-1]  # the input's own answer kept
    assert answers[0]["answer"]["usage"]["completion_tokens"] >= 1
    assert answers[0]["answer"]["finish_reason"] in ("stop", "length")
    # a chat set `data check` reads: a tiny model's empty answers are its only findings
    report = check_file(out_dir / "golden.jsonl")
    assert report.format == "chat" and report.examples + len(report.errors) >= 40
    assert {i.code for i in report.errors} <= {"empty_target", "too_few_examples"}
    record = json.loads((out_dir / "record.json").read_text())
    assert record["model"] == f"openai:{model}" and record["asked"] == 40
    for path in out_dir.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace")  # the key, nowhere
    capsys.readouterr()

    code, out, _ = _run(capsys, *argv)  # a rerun asks nothing
    again = json.loads(out)
    assert code == 0 and again["from_cache"] == 40
    assert json.loads((out_dir / "record.json").read_text())["asked"] == 0


def test_429_with_retry_after_is_waited_for(env, tmp_path, capsys):
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(json.dumps({"text": f"message {i}"}) + "\n" for i in range(6)))
    fail = (lambda n, body: (429, {"Retry-After": "1"}) if n == 2 else None)
    with ScriptedServer(lambda body: "billing", fail=fail) as server:
        os.environ[KEY_ENV] = server.key
        started = time.monotonic()
        code, out, _ = _run(capsys, "migrate", "record", "--model", "openai:scripted", "--inputs",
                            inputs, "--out", tmp_path / "out", "--base-url", server.url,
                            "--api-key-env", KEY_ENV, "--system", "Route it.",
                            "--concurrency", 1, "--json")
        waited = time.monotonic() - started
    assert code == 0 and json.loads(out)["answered"] == 6
    assert server.completed == 6 and server.received == 7 and waited >= 1.0
    assert server.bodies[0]["messages"] == [{"role": "system", "content": "Route it."},
                                            {"role": "user", "content": "message 0"}]


@pytest.mark.parametrize(("setup", "expected"), [
    ("wrong key", "refused the API key (401)"),
    ("forbidden", "refused the API key (403)"),
    ("gone", "not found (404)"),
])
def test_refusals_end_with_exit_2_naming_the_fix(env, tmp_path, capsys, setup, expected):
    inputs = tmp_path / "in.jsonl"
    inputs.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    fail = (lambda n, body: (403, {})) if setup == "forbidden" else None
    with ScriptedServer(fail=fail) as server:
        os.environ[KEY_ENV] = "sk-wrong-key-0000" if setup == "wrong key" else server.key
        model = "openai:retired-model" if setup == "gone" else "openai:scripted"
        code, _, err = _run(capsys, "migrate", "record", "--model", model, "--inputs", inputs,
                            "--out", tmp_path / "out", "--base-url", server.url,
                            "--api-key-env", KEY_ENV, "--max-retries", 0)
    assert code == 2 and expected in err
    assert "sk-wrong-key-0000" not in err


def test_a_killed_recording_resumes_and_pays_for_no_answer_twice(env, tmp_path):
    n = 12
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"}]})
                              + "\n" for i in range(n)))
    argv = [sys.executable, "-m", "tunesmith", "migrate", "record", "--model", "openai:scripted",
            "--inputs", str(inputs), "--out", str(tmp_path / "out"), "--concurrency", "1",
            "--api-key-env", KEY_ENV, "--quiet"]
    with ScriptedServer(lambda body: body["messages"][-1]["content"].upper(),
                        hold_after=5) as server:
        environ = {**os.environ, KEY_ENV: server.key}
        first = subprocess.Popen(argv + ["--base-url", server.url], env=environ,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: server.received == 6, timeout=60, every=0.05)  # 5 answered, 1 held
        first.kill()
        first.wait(30)
        server.drop_held = True
        server.hold.set()  # the held request is closed unanswered: its client is gone
        assert server.completed == 5
        server.hold_after = None
        second = subprocess.run(argv + ["--base-url", server.url], env=environ,
                                capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert server.completed == n  # every answer paid for once
    answered = [b["messages"][-1]["content"] for b in server.bodies]
    assert sorted(set(answered)) == sorted(f"q{i}" for i in range(n))
    golden = [json.loads(x) for x in (tmp_path / "out" / "golden.jsonl").read_text().splitlines()]
    assert [g["messages"][-1]["content"] for g in golden] == [f"Q{i}" for i in range(n)]


def test_max_cost_refuses_a_recording_estimated_over_it(env, tmp_path, capsys):
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(json.dumps({"messages": [{"role": "user",
                                                        "content": f"{i} " + "x" * 400}]})
                              + "\n" for i in range(50)))
    with ScriptedServer(models=("ft:gpt-4o-mini-2024-07-18:acme:support:abc",)) as server:
        os.environ[KEY_ENV] = server.key
        code, _, err = _run(capsys, "migrate", "record", "--model",
                            "openai:ft:gpt-4o-mini-2024-07-18:acme:support:abc", "--inputs",
                            inputs, "--out", tmp_path / "out", "--base-url", server.url,
                            "--api-key-env", KEY_ENV, "--max-cost", "0.001")
        assert code == 2 and "over --max-cost" in err and server.received == 0
        code, _, err = _run(capsys, "migrate", "record", "--model",
                            "openai:ft:gpt-4o-mini-2024-07-18:acme:support:abc", "--inputs",
                            inputs, "--out", tmp_path / "out", "--base-url", server.url,
                            "--api-key-env", KEY_ENV, "--max-cost", "5")
        assert code == 0 and server.completed == 50
        assert "days left (shutdown 2027-01-14)" in err


def test_compare_against_the_incumbent_recorded_and_live(fine_tuned, env, tmp_path, capsys,
                                                         tiny_model_dir, service_data):  # noqa: F811
    server, _, job = fine_tuned
    model = f"openai:{job.fine_tuned_model}"
    data, rec = tmp_path / "data", tmp_path / "recorded"
    assert main(["data", "prepare", str(service_data / "train.jsonl"), "--task",
                 "classification", "--out", str(data), "--val", "0.2", "--test", "0.3"]) == 0
    endpoint = ["--base-url", server.url, "--api-key-env", KEY_ENV]
    code, _, _ = _run(capsys, "migrate", "record", "--model", model, "--inputs", data, "--out",
                      rec, "--max-tokens", 4, *endpoint, "--json")
    assert code == 0 and sorted(p.name for p in rec.glob("*.jsonl")) == [
        "answers.jsonl", "test.jsonl", "train.jsonl", "validation.jsonl"]
    assert (rec / "task.json").read_text() == (data / "task.json").read_text()

    report = tmp_path / "report"
    code, out, _ = _run(capsys, "compare", "--data", data, "--model", tiny_model_dir, "--shots",
                        0, "--epochs", 1, "--no-audit", "--incumbent", rec / "test.jsonl",
                        "--goal", "match-incumbent", "--margin", 0.05, "--out", report,
                        "--quiet", "--json")
    assert code == 0
    doc = json.loads(out)
    names = [a["name"] for a in doc["approaches"]]
    assert names[0] == f"incumbent ({job.fine_tuned_model})" and "zero-shot" in names
    incumbent = doc["incumbent"]
    assert set(incumbent["agreement"]) == set(names[1:])
    for a in incumbent["agreement"].values():
        assert a["measure"] == "label agreement" and 0 <= a["low"] <= a["value"] <= a["high"] <= 1
    assert {t["name"] for t in incumbent["non_inferiority"]} == set(names[1:])
    assert doc["recommendation"]["rule"].startswith("Match the incumbent")
    chosen = doc["recommendation"]["choice"]
    assert chosen == "none" or any(t["name"] == chosen and t["non_inferior"]
                                   for t in incumbent["non_inferiority"])
    assert doc["approaches"][0]["cost"]["where"].startswith("hosted fine-tune")
    md = (report / "report.md").read_text()
    assert md.index("## Replacing") < md.index("## Recommendation")
    recorded = doc["approaches"][0]["metrics"]

    # the live model as --incumbent: recorded into the report folder, the same answers
    live = tmp_path / "report-live"
    code, out, _ = _run(capsys, "compare", "--data", data, "--model", tiny_model_dir, "--shots",
                        0, "--epochs", 1, "--no-audit", "--incumbent", model, *endpoint,
                        "--out", live, "--quiet", "--json")
    assert code == 0
    again = json.loads(out)
    assert (live / "incumbent" / "recording" / "golden.jsonl").is_file()
    assert again["approaches"][0]["metrics"] == recorded

    # the recording as the data: its answers are the reference, and say so
    code, out, _ = _run(capsys, "compare", "--data", rec, "--model", tiny_model_dir, "--shots",
                        0, "--epochs", 1, "--no-audit", "--incumbent", rec / "test.jsonl",
                        "--out", tmp_path / "report-rec", "--quiet", "--json")
    if code == 0:  # a tiny model may answer nothing at all: then there is nothing to train on
        assert json.loads(out)["incumbent"]["reference_is_incumbent"] is True


@pytest.mark.parametrize(("golden", "expected"), [
    ('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "x"}]}\n'
     '{"messages": [\n', "golden.jsonl:2"),
    ('{"messages": [{"role": "user", "content": "a"}]}\n', "golden.jsonl:1: no recorded answer"),
    ("", "golden.jsonl"),
    ("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                      {"role": "assistant", "content": "x"}],
                         "metadata": {"recorded_from": "ft:a" if i != 2 else "ft:b"}}) + "\n"
             for i in range(4)), "lines 3 were recorded from another model"),
])
def test_a_broken_recording_is_named_by_line(tmp_path, capsys, tiny_model_dir, golden, expected):
    from tests.conftest import ASSETS

    data = tmp_path / "data"
    assert main(["data", "prepare", str(ASSETS / "classification_tiny.jsonl"), "--task",
                 "classification", "--out", str(data), "--val", "0.2", "--test", "0.3"]) == 0
    (tmp_path / "golden.jsonl").write_text(golden)
    code, _, err = _run(capsys, "compare", "--data", data, "--model", tiny_model_dir, "--shots",
                        0, "--no-audit", "--incumbent", tmp_path / "golden.jsonl", "--out",
                        tmp_path / "report")
    assert code == 2 and expected in err
    assert not (tmp_path / "report" / "run").exists()  # nothing trained


def _router(body: dict) -> str:
    """A teacher that knows the service data's labels."""
    text = body["messages"][-1]["content"]
    if any(w in text for w in ("bill", "charged", "refund", "invoice")):
        return "billing"
    if any(w in text for w in ("power", "electricity", "grid", "lights")):
        return "outage"
    return "app"


def test_compare_trains_on_a_teachers_answers(env, tmp_path, capsys, tiny_model_dir,
                                              service_data):  # noqa: F811
    data = tmp_path / "data"
    assert main(["data", "prepare", str(service_data / "train.jsonl"), "--task",
                 "classification", "--out", str(data), "--val", "0.2", "--test", "0.3"]) == 0
    capsys.readouterr()
    with ScriptedServer(_router, models=("teacher",)) as teacher:
        os.environ[KEY_ENV] = teacher.key
        code, out, _ = _run(capsys, "compare", "--data", data, "--model", tiny_model_dir,
                            "--shots", 0, "--epochs", 1, "--no-audit", "--teacher",
                            "openai:teacher", "--base-url", teacher.url, "--api-key-env",
                            KEY_ENV, "--out", tmp_path / "report", "--quiet", "--json")
    assert code == 0
    doc = json.loads(out)
    names = [a["name"] for a in doc["approaches"]]
    assert names == ["zero-shot", "fine-tuned (lora)", "fine-tuned (lora, teacher)",
                     "fine-tuned (lora, gold+teacher)"]
    n_train = doc["n_train"]
    assert teacher.completed == n_train  # every training input answered once
    assert doc["training"]["fine-tuned (lora, teacher)"]["examples"] == n_train
    assert doc["training"]["fine-tuned (lora, gold+teacher)"]["examples"] == 2 * n_train
    [taught] = [d for d in doc["distillation"] if d["trained_on"] == "teacher"]
    assert taught["gold_row"] == "fine-tuned (lora)" and taught["share_of_gold"] is not None
    rows = (tmp_path / "report" / "data" / "train-teacher.jsonl").read_text().splitlines()
    assert {json.loads(r)["messages"][-1]["content"] for r in rows} <= {"billing", "outage",
                                                                        "app"}
