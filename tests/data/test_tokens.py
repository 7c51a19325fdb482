import numpy as np

from tests.conftest import ASSETS
from tunesmith.data import read_dataset
from tunesmith.data.render import CHATML_TEMPLATE, render
from tunesmith.data.tokens import TokenCounts, count_tokens, token_stats


def test_counts_match_tokenizing_each_example_alone(tokenizer):
    examples = read_dataset(ASSETS / "chat_tiny.jsonl").examples
    counts = count_tokens(examples, tokenizer)
    for e, total, completion in zip(examples, counts.total, counts.completion):
        msgs = [{"role": m.role, "content": m.content} for m in e.messages]
        ids = tokenizer.apply_chat_template(msgs, tokenize=True, return_dict=False)
        assert total == len(ids)
        answer = tokenizer(e.target + "<|im_end|>\n", add_special_tokens=False)["input_ids"]
        assert completion == len(answer)  # the answer, its end-of-turn token and the newline


def test_stats_are_exact_percentiles():
    counts = TokenCounts(total=list(range(1, 101)), completion=[1] * 100)
    s = token_stats(counts, max_seq_len=90)
    assert (s.min, s.max, s.total_tokens, s.truncated) == (1, 100, 5050, 10)
    assert s.median == np.percentile(np.arange(1, 101), 50) == 50.5
    assert s.p95 == np.percentile(np.arange(1, 101), 95)
    assert s.mean_completion_tokens == 1.0


def test_tokenizer_without_template_gets_chatml(tokenizer):
    class NoTemplate:
        chat_template = None

        def apply_chat_template(self, conversations, **kw):
            return tokenizer.apply_chat_template(conversations, **kw)

    text = render(NoTemplate(), [[{"role": "user", "content": "hi"}]], add_generation_prompt=True)
    assert text == ["<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"]
    assert "im_start" in CHATML_TEMPLATE
