"""Which tokens carry loss: the answer and its end-of-turn token, nothing else."""

import pytest

from tunesmith.data.examples import Example, Message
from tunesmith.data.render import IGNORE_INDEX, tokenize_example


def trained_text(tokenizer, item):
    return tokenizer.decode([t for t, y in zip(item.input_ids, item.labels) if y != IGNORE_INDEX])


def show(tokenizer, item):
    """Each token, marked * when it carries loss (printed so a failing test shows the mask)."""
    return " ".join(("*" if y != IGNORE_INDEX else "") + repr(tokenizer.decode([t]))
                    for t, y in zip(item.input_ids, item.labels))


def test_only_the_answer_and_its_end_of_turn_carry_loss(tokenizer):
    e = Example(1, [Message("system", "Route it."), Message("user", "my bill doubled"),
                    Message("assistant", "billing")])
    item = tokenize_example(tokenizer, e, 512)
    print(show(tokenizer, item))
    assert trained_text(tokenizer, item) == "billing<|im_end|>\n"
    full = tokenizer.apply_chat_template([m.to_dict() for m in e.messages], tokenize=False)
    assert tokenizer.decode(item.input_ids) == full
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in [
        t for t, y in zip(item.input_ids, item.labels) if y != IGNORE_INDEX]


def test_weight_zero_answers_carry_no_loss(tokenizer):
    e = Example(1, [Message("user", "hi"), Message("assistant", "draft", 0),
                    Message("user", "again"), Message("assistant", "final", 1)])
    item = tokenize_example(tokenizer, e, 512)
    print(show(tokenizer, item))
    assert trained_text(tokenizer, item) == "final<|im_end|>\n"


def test_multi_turn_trains_every_answer_by_default(tokenizer):
    e = Example(1, [Message("user", "a"), Message("assistant", "one"),
                    Message("user", "b"), Message("assistant", "two")])
    assert trained_text(tokenizer, tokenize_example(tokenizer, e, 512)) == \
        "one<|im_end|>\ntwo<|im_end|>\n"


def test_truncation_is_flagged(tokenizer):
    e = Example(1, [Message("user", "word " * 100), Message("assistant", "x")])
    item = tokenize_example(tokenizer, e, 32)
    assert item.truncated and len(item.input_ids) == 32 and item.n_loss_tokens == 0


@pytest.mark.parametrize("template", [
    # a template that rewrites earlier turns once later ones exist cannot be masked by prefix
    "{% for m in messages %}{{ m['role'] }}{% if loop.last %}!{% endif %}: {{ m['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}",
])
def test_inconsistent_template_is_refused(tokenizer, template):
    from tunesmith.errors import TunesmithError

    class Tok:
        chat_template = template

        def apply_chat_template(self, *a, **kw):
            return tokenizer.apply_chat_template(*a, **kw)

    e = Example(1, [Message("user", "a"), Message("assistant", "b"), Message("user", "c"),
                    Message("assistant", "d")])
    with pytest.raises(TunesmithError, match="chat template"):
        tokenize_example(Tok(), e, 512)
