"""The judge: verdicts in both orders, its figures, and the checks that catch a bad judge (scripted
judges behind an OpenAI-compatible server of our own)."""

import json
import re

import pytest

from tests.endpoints.scripted import ScriptedServer
from tunesmith.cli import main
from tunesmith.config import EndpointOptions, JudgeOptions
from tunesmith.data.examples import Example, Message
from tunesmith.data.taskfile import TaskSpec
from tunesmith.errors import UsageError
from tunesmith.evaluation.judge import (
    PROBE_KINDS,
    degraded,
    length_controlled,
    outcome,
    parse_grade,
    parse_verdict,
)
from tunesmith.evaluation.runner import EvalResult
from tunesmith.studies.judging import check_judge_options, judge_results

SPEC = TaskSpec("chat", [], "Answer the customer in two short, friendly sentences.")
QUESTIONS = [f"How do I reset the inverter in unit {i}?" for i in range(12)]
REFERENCES = [f"Hold the red button on unit {i} for ten seconds. The light turns green when it is "
              f"done, about {i + 2} minutes later." for i in range(12)]


def examples() -> list[Example]:
    return [Example(i, [Message("system", SPEC.system), Message("user", q),
                        Message("assistant", r)]) for i, (q, r) in
            enumerate(zip(QUESTIONS, REFERENCES))]


def row(name: str, answers: list[str]) -> EvalResult:
    return EvalResult(name, "prompt", 0, "chat", "m", "generate", len(answers),
                      {"token_f1": 0.5, "exact_match": 0.0}, 0, 0.1, 50.0, 20.0, answers,
                      REFERENCES[: len(answers)], QUESTIONS[: len(answers)])


def answers_in(body: dict) -> tuple[str, str]:
    text = body["messages"][-1]["content"]
    a = re.search(r"\[Answer A\]\n(.*?)\n\n\[Answer B\]", text, re.DOTALL).group(1)
    b = re.search(r"\[Answer B\]\n(.*?)\n\nWhich answer", text, re.DOTALL).group(1)
    return a, b


def judged(server: ScriptedServer, monkeypatch, rows: list[EvalResult], **opts):
    monkeypatch.setenv("JUDGE_KEY", server.key)
    return judge_results(JudgeOptions(judge="openai:scripted", **opts), rows, examples(), SPEC,
                         endpoint=EndpointOptions(base_url=server.url, api_key_env="JUDGE_KEY",
                                                  use_cache=False))


def test_verdicts_and_grades_are_read_from_text():
    assert [parse_verdict(t) for t in ("A", "[[B]]", "Tie.", "answer: a", "C", "maybe", "")] == \
        ["A", "B", "tie", "A", "tie", None, None]
    assert [parse_grade(t) for t in ("[[7]]", "Rating: 10/10", "eleven", "")] == [7, 10, None, None]
    # both orders: a verdict that flips with the order is a tie
    assert outcome("A", "B") == ("win", True) and outcome("B", "A") == ("loss", True)
    assert outcome("A", "A") == ("tie", False) and outcome("tie", "B") == ("tie", False)
    assert outcome(None, "B") == ("invalid", False)


def test_probes_are_degraded_copies_of_the_judged_inputs_own_references():
    probes = degraded(REFERENCES[:3], seed=0)
    assert {k for _, k, _ in probes} == set(PROBE_KINDS)
    for i, kind, copy in probes:
        ref = REFERENCES[i]
        if kind == PROBE_KINDS[0]:
            assert copy == " ".join(ref.split()[: len(ref.split()) // 2])
        elif kind == PROBE_KINDS[1]:
            assert copy != ref and sorted(copy.split()) == sorted(ref.split())
        else:
            assert copy in REFERENCES[:3] and copy != ref  # never another split's answer


def test_length_control_reads_the_win_rate_at_equal_length():
    # a judge that picks the longer answer: wins exactly where the approach is longer
    diffs = [30, 25, 20, 18, 15, 12, 10, 8, -8, -10] * 3
    scores = [1.0 if d > 0 else 0.0 for d in diffs]
    raw = sum(scores) / len(scores)
    lc = length_controlled(scores, [100 + d for d in diffs], [100] * len(diffs))
    assert raw == 0.8 and abs(lc - 0.5) < 0.2


def test_a_judge_that_always_answers_a_is_caught_by_the_order_check(monkeypatch):
    with ScriptedServer(lambda body: "A") as server:
        report = judged(server, monkeypatch, [row("zero-shot", REFERENCES[::-1])])
    r = report.rows["zero-shot"]
    assert r["ties"] == 12 and r["wins"] == r["losses"] == 0 and r["order_agreement"] == 0
    assert report.checks.order_agreement == 0 and report.checks.probe_pass == 0
    assert not report.checks.trusted
    assert any("swapped places in only 0%" in w for w in report.checks.why)
    assert any("0% of" in w and "--judge-min-probe" in w for w in report.checks.why)
    # both orders were sent: 12 pairs x 2, plus the probes x 2
    assert server.received == report.calls == 24 + 2 * report.checks.probes


def test_a_judge_that_prefers_the_longer_answer_is_caught_by_the_length_control(monkeypatch):
    def longer(body):
        a, b = answers_in(body)
        return "A" if len(a) > len(b) else "B"

    # longer by 3-11 words on 9 inputs, shorter by 2-4 on 3: raw 0.75, even at equal length
    padded = [r + " Happy to help" + ", truly" * i + "." if i < 9 else
              " ".join(r.split()[:-(i - 7)]) for i, r in enumerate(REFERENCES)]
    with ScriptedServer(longer) as server:
        report = judged(server, monkeypatch, [row("5-shot", padded)])
    r = report.rows["5-shot"]
    assert r["win_rate"] == pytest.approx(0.75) and r["length_bias"]
    assert abs(r["length_controlled"] - 0.5) < 0.15
    assert any("length bias on 5-shot" in w for w in report.checks.why)
    # its probes: it prefers the full reference to half of it, not to a shuffled copy
    assert report.checks.probe_by_kind[PROBE_KINDS[0]] == 1.0
    assert report.checks.probe_by_kind[PROBE_KINDS[1]] == 0.0 and not report.checks.trusted


def test_a_good_judge_is_trusted_and_its_answers_that_are_no_verdict_are_counted(monkeypatch):
    def oracle(body):  # prefers this input's reference answer; says nonsense on one input
        text = body["messages"][-1]["content"]
        unit = int(re.search(r"in unit (\d+)\?", text).group(1))
        if unit == 3:
            return "I cannot decide"
        a, b = answers_in(body)
        right = REFERENCES[unit]
        return "A" if a == right != b else "B" if b == right != a else "tie"

    worse = [r.split(".")[0] + "." for r in REFERENCES]
    with ScriptedServer(oracle) as server:
        report = judged(server, monkeypatch, [row("zero-shot", worse)], judge_min_probe=0.8)
    r = report.rows["zero-shot"]
    # the nonsense is counted (the pair and the 3 probes of that input, both orders each)
    assert r["losses"] == 11 and r["invalid"] == 1 and report.invalid == 2 + 3 * 2
    assert report.checks.trusted, report.checks.why
    assert report.checks.probe_pass >= 0.8
    assert report.scores["zero-shot"] == [0.0] * 3 + [0.5] + [0.0] * 8
    assert len(report.examples) == 5 and report.examples[0]["verdict_answer_first"] == "B"
    assert "Answer the customer" in report.system_prompt
    assert report.cost_usd is None and "price unknown" in report.cost_basis


def test_judge_options_that_make_no_sense_are_refused(tiny_data_dir, capsys):
    with pytest.raises(UsageError, match="labels or entities are scored exactly"):
        check_judge_options(JudgeOptions(judge="openai:x"), "classification")
    with pytest.raises(UsageError, match="need --judge"):
        check_judge_options(JudgeOptions(judge_against="zero-shot"), "chat")
    with pytest.raises(UsageError, match="--judge-min-probe"):
        JudgeOptions(judge="openai:x", judge_min_probe=1.5)
    code = main(["eval", "--data", str(tiny_data_dir / "validation.jsonl"), "--judge",
                 "openai:x"])
    assert code == 2 and "no judge needed" in capsys.readouterr().err


def test_an_unreachable_judge_is_a_clear_error(tmp_path, tiny_model_dir, capsys, monkeypatch):
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(e.to_chat()) + "\n" for e in examples()[:3]))
    monkeypatch.setenv("JUDGE_KEY", "sk-nothing")
    code = main(["eval", "--data", str(data), "--model", str(tiny_model_dir), "--judge",
                 "openai:judge", "--base-url", "http://127.0.0.1:9/v1", "--api-key-env",
                 "JUDGE_KEY", "--max-retries", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "127.0.0.1:9" in err and "Traceback" not in err
    assert "sk-nothing" not in err


def test_absolute_grading_scores_each_answer_alone_and_probes_the_same_way(monkeypatch):
    def grader(body):  # 9 for this input's reference, 3 for anything else
        text = body["messages"][-1]["content"]
        unit = int(re.search(r"in unit (\d+)\?", text).group(1))
        answer = re.search(r"\[Answer\]\n(.*?)\n\nRating", text, re.DOTALL).group(1)
        return "[[9]]" if answer == REFERENCES[unit] else "Rating: 3/10"

    worse = [r.split(".")[0] + "." for r in REFERENCES]
    with ScriptedServer(grader) as server:
        report = judged(server, monkeypatch, [row("zero-shot", worse)], judge_mode="score")
    assert report.rows["zero-shot"]["mean"] == 3.0
    assert report.rows["reference answers"]["mean"] == 9.0
    assert report.checks.probe_pass == 1.0 and report.checks.trusted
    assert report.scores["zero-shot"] == [3.0] * 12 and "1 (useless) to 10" in report.system_prompt
