import json

from tests.conftest import ASSETS, shared, write_lines
from tunesmith.data.check import check_file
from tunesmith.pricing import load_prices


def test_check_reports_counts_tokens_and_estimate(tokenizer):
    r = check_file(ASSETS / "chat_tiny.jsonl", tokenizer=tokenizer, prices=load_prices())
    assert (r.format, r.task, r.rows, r.examples, r.ok) == ("chat", "classification", 12, 12, True)
    assert r.labels == {"billing": 4, "outage": 4, "app": 4}
    assert r.estimate.epochs == 8  # 12 examples: OpenAI's auto picks 100 // 12
    assert r.estimate.billed_tokens == r.tokens.total_tokens * 8
    price = load_prices().openai["gpt-4o-mini-2024-07-18"].training
    assert r.estimate.costs["gpt-4o-mini-2024-07-18"] == round(r.estimate.billed_tokens / 1e6 * price, 4)


def test_raw_classification_is_counted_with_the_generated_system(tokenizer):
    raw = check_file(ASSETS / "classification_tiny.jsonl", tokenizer=tokenizer)
    chat = check_file(ASSETS / "chat_tiny.jsonl", tokenizer=tokenizer)
    assert raw.tokens.mean > chat.tokens.mean  # the generated instruction lists the labels


def test_truncation_is_counted_and_reported_per_line(tokenizer):
    r = check_file(ASSETS / "chat_tiny.jsonl", tokenizer=tokenizer, max_seq_len=40)
    long_lines = [i.line for i in r.issues if i.code == "too_long"]
    assert r.tokens.truncated == len(long_lines) > 0


def test_three_broken_lines_are_all_named(tmp_path, tokenizer):
    lines = shared("sst2", "chat", "train.jsonl").read_text().splitlines()[:200]
    lines[9] = lines[9][:-20]                      # line 10: truncated
    lines[99] = lines[99].replace('"assistant"', '"bot"')  # line 100: unknown role
    lines[149] = json.dumps({"messages": "hello"})  # line 150: not a list
    r = check_file(write_lines(tmp_path / "broken.jsonl", lines), tokenizer=tokenizer)
    assert not r.ok
    assert sorted((i.line, i.code) for i in r.errors) == [
        (10, "invalid_json"), (100, "unrecognized_role"), (150, "missing_messages_list")]
    assert r.examples == 197


def test_report_json_is_serialisable(tokenizer):
    r = check_file(ASSETS / "ner_tiny.conll", tokenizer=tokenizer, prices=load_prices())
    doc = json.loads(json.dumps(r.to_dict()))
    assert doc["task"] == "ner" and doc["labels"]["corporation"] == 8
    assert doc["tokens"]["examples"] == 12
