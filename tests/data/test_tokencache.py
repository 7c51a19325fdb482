"""Batched, cached tokenization: the same tokens and loss masks as `tokenize_example`, arrays
instead of lists, and a second run that reads the cache instead of tokenizing."""

import json

import numpy as np
import pytest

from tests.conftest import ASSETS
from tunesmith.data import tokencache
from tunesmith.data.formats import read_dataset
from tunesmith.data.render import tokenize_example
from tunesmith.data.tokencache import tokenize_many


def multi_turn(path):
    rows = [{"messages": [{"role": "system", "content": "Be brief."},
                          {"role": "user", "content": f"hi {i}"},
                          {"role": "assistant", "content": f"hello {i}", "weight": i % 2},
                          {"role": "user", "content": "and?"},
                          {"role": "assistant", "content": "done " * (i + 1)},
                          ] + ([{"role": "user", "content": "trailing"}] if i == 3 else [])}
            for i in range(6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("max_seq_len", [1024, 30])
def test_the_same_tokens_as_one_by_one(tokenizer, tmp_path, max_seq_len, monkeypatch):
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path / "home"))
    for path in (ASSETS / "chat_tiny.jsonl", multi_turn(tmp_path / "multi.jsonl")):
        examples = read_dataset(path).examples
        batched = tokenize_many(tokenizer, examples, max_seq_len, path)
        for e, got in zip(examples, batched, strict=True):
            want = tokenize_example(tokenizer, e, max_seq_len)
            assert isinstance(got.input_ids, np.ndarray) and got.input_ids.dtype == np.int32
            assert got.input_ids.tolist() == want.input_ids
            assert got.labels.tolist() == want.labels
            assert got.truncated == want.truncated and got.n_loss_tokens == want.n_loss_tokens
        assert any(x.truncated for x in batched) == (max_seq_len == 30)


def test_a_second_run_reads_the_cache_and_a_change_misses_it(tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path / "home"))
    path = multi_turn(tmp_path / "data.jsonl")
    examples = read_dataset(path).examples
    first = tokenize_many(tokenizer, examples, 64, path)
    real = tokencache._tokenize
    calls = []
    monkeypatch.setattr(tokencache, "_tokenize", lambda *a: calls.append(1) or real(*a))
    again = tokenize_many(tokenizer, examples, 64, path)
    assert calls == [] and [x.input_ids.tolist() for x in again] == \
        [x.input_ids.tolist() for x in first]
    tokenize_many(tokenizer, examples, 65, path)  # another max_seq_len
    tokenize_many(tokenizer, examples, 64, path, system="Another system prompt")
    path.write_text(path.read_text().replace("hi 0", "hey 0"))  # the file changed
    tokenize_many(tokenizer, read_dataset(path).examples, 64, path)
    assert len(calls) == 3
    assert len(list((tmp_path / "home" / "cache" / "tokens").iterdir())) == 4


def test_tool_rows_the_same_as_one_by_one(tiny_tools_model_dir, tmp_path, monkeypatch):
    from tunesmith.modeling import load_tokenizer

    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path / "home"))
    tokenizer = load_tokenizer(str(tiny_tools_model_dir))
    path = ASSETS / "chat_tools_tiny.jsonl"
    examples = read_dataset(path).examples
    for e, got in zip(examples, tokenize_many(tokenizer, examples, 2048, path), strict=True):
        want = tokenize_example(tokenizer, e, 2048)
        assert got.input_ids.tolist() == want.input_ids and got.labels.tolist() == want.labels
