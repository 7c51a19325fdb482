"""`--judge` through `compare` and `eval`, with judges that are real servers: a scripted one of
our own, and a live `tunesmith serve` running the tiny model (a weak judge: the point of the
checks)."""

import json

import pytest

from tests.endpoints.scripted import ScriptedServer
from tests.serve.conftest import Server
from tunesmith.cli import main
from tunesmith.data.prepare import prepare

ANSWERS = {"billing": "Your bill is being checked; we will refund any overcharge.",
           "outage": "Crews are on their way; power returns within four hours.",
           "app": "Reinstall the app; the latest version fixes the crash."}


def chat_data(tmp_path):
    """A support set whose answers are sentences (open-ended), prepared as a chat task."""
    rows = []
    for i in range(24):
        kind = list(ANSWERS)[i % 3]
        rows.append({"messages": [
            {"role": "system", "content": "Answer the customer in one short sentence."},
            {"role": "user", "content": f"Message {i} about my {kind}: please help."},
            {"role": "assistant", "content": ANSWERS[kind]}]})
    src = tmp_path / "support.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "data"
    prepare(src, "chat", out, val=0.2, test=0.25)
    return out


def test_compare_with_a_judge_that_fails_its_checks_falls_back(tmp_path, tiny_model_dir, capsys,
                                                               monkeypatch):
    data = chat_data(tmp_path)
    with ScriptedServer(lambda body: "A") as judge:
        monkeypatch.setenv("JUDGE_KEY", judge.key)
        out = tmp_path / "report"
        assert main(["compare", "--data", str(data), "--model", str(tiny_model_dir), "--shots",
                     "0", "--epochs", "1", "--no-audit", "--judge", "openai:scripted",
                     "--base-url", judge.url, "--api-key-env", "JUDGE_KEY", "--out", str(out),
                     "--quiet", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    j = doc["judge"]
    assert j["n"] == 6 and set(j["rows"]) == {"zero-shot", "fine-tuned (lora)"}
    assert not j["trusted"] and j["checks"]["order_agreement"] == 0
    reason = doc["recommendation"]["reason"]
    assert "is not trusted on this data" in reason and "token F1 does" in reason
    md = (out / "report.md").read_text()
    assert "## Judge" in md and "NOT trusted" in md and "answer first" in md
    assert judge.key not in (out / "report.html").read_text() + md + json.dumps(doc)


def test_a_live_tunesmith_serve_judges_eval_answers_and_a_rerun_asks_nothing(
        tmp_path, tiny_model_dir, capsys, monkeypatch):
    data = chat_data(tmp_path)
    server = Server(tmp_path / "svc", tiny_model_dir).start()
    try:
        monkeypatch.setenv("JUDGE_KEY", "key-alpha")
        argv = ["eval", "--data", str(data), "--model", str(tiny_model_dir), "--max-examples",
                "3", "--judge", f"openai:{tiny_model_dir}", "--base-url", server.url,
                "--api-key-env", "JUDGE_KEY", "--json"]
        assert main(argv) == 0
        first = json.loads(capsys.readouterr().out)["judge"]
        assert main(argv) == 0
        again = json.loads(capsys.readouterr().out)["judge"]
    finally:
        server.stop()
    row = first["rows"]["zero-shot"]
    assert row["n"] == 3 and row["wins"] + row["ties"] + row["losses"] + row["invalid"] == 3
    # both orders of 3 pairs and of each probe were sent and read (logprobs, else the text; a
    # random tiny model names no verdict, so its answers are counted as invalid, not guessed)
    assert first["calls"] == 2 * 3 + 2 * first["checks"]["probes"]
    assert first["prompt_tokens"] > 0 and 0 <= first["invalid"] <= first["calls"]
    assert row["invalid"] == 3 or first["invalid"] < first["calls"]
    assert again["from_cache"] == again["calls"] and again["rows"] == first["rows"]
    assert "run here" not in first["cost_basis"] and "price unknown" in first["cost_basis"]


@pytest.mark.slow  # an integration run: two fine-tunes and their judging (make test-slow)
def test_curve_with_a_judge_that_fails_its_checks_stays_on_token_f1(tmp_path, tiny_model_dir,
                                                                    capsys, monkeypatch):
    data = chat_data(tmp_path)
    with ScriptedServer(lambda body: "B") as judge:
        monkeypatch.setenv("JUDGE_KEY", judge.key)
        assert main(["curve", "--data", str(data), "--model", str(tiny_model_dir), "--sizes",
                     "8,12", "--shots", "0", "--judge", "openai:scripted", "--base-url",
                     judge.url, "--api-key-env", "JUDGE_KEY", "--out", str(tmp_path / "c"),
                     "--quiet", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["metric"] == "token_f1" and not doc["judge"]["trusted"]
    assert "not trusted" in doc["judge"]["note"] and len(doc["points"]) == 2
    # both sizes and the prompting band were judged, in both orders
    assert judge.received >= 2 * 3 * 3


def test_compare_with_a_trusted_judge_decides_on_its_win_rate(tmp_path, tiny_model_dir, capsys,
                                                              monkeypatch):
    import re

    def oracle(body):  # prefers this input's reference answer, in either position
        text = body["messages"][-1]["content"]
        kind = re.search(r"about my (\w+)", text).group(1)
        a = re.search(r"\[Answer A\]\n(.*?)\n\n\[Answer B\]", text, re.DOTALL).group(1)
        b = re.search(r"\[Answer B\]\n(.*?)\n\nWhich answer", text, re.DOTALL).group(1)
        right = ANSWERS[kind]
        return "A" if a == right != b else "B" if b == right != a else "tie"

    data = chat_data(tmp_path)
    with ScriptedServer(oracle) as judge:
        monkeypatch.setenv("JUDGE_KEY", judge.key)
        assert main(["compare", "--data", str(data), "--model", str(tiny_model_dir), "--shots",
                     "0", "--epochs", "1", "--no-audit", "--judge", "openai:scripted",
                     "--base-url", judge.url, "--api-key-env", "JUDGE_KEY", "--judge-min-probe",
                     "0.6", "--out", str(tmp_path / "report"), "--quiet", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["judge"]["trusted"], doc["judge"]["checks"]["why"]
    reason = doc["recommendation"]["reason"]
    assert reason.startswith("Decided on the judged win rate against the reference answers")
    assert all(c["metric"] == "judged" for c in doc["recommendation"]["comparisons"])
