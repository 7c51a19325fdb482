"""Rendering chat examples to the text and tokens a model sees, with the model's chat template.

A tokenizer without a chat template (GPT-2, Pythia, most base models) gets ChatML, the format
SmolLM2 and Qwen use:

    <|im_start|>system\\nClassify ...<|im_end|>\\n<|im_start|>user\\nrefund pls<|im_end|>\\n
    <|im_start|>assistant\\nbilling<|im_end|>\\n
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tunesmith.data.examples import Example
from tunesmith.errors import TunesmithError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def chat_template(tokenizer: PreTrainedTokenizerBase) -> str:
    """The tokenizer's chat template, or ChatML when it has none."""
    return tokenizer.chat_template or CHATML_TEMPLATE


def render(
    tokenizer: PreTrainedTokenizerBase, conversations: list[list[dict]],
    add_generation_prompt: bool = False,
) -> list[str]:
    """Render many conversations at once (the template is compiled once)."""
    if not conversations:
        return []
    return tokenizer.apply_chat_template(
        conversations, tokenize=False, add_generation_prompt=add_generation_prompt,
        chat_template=chat_template(tokenizer),
    )


def prompt_messages(example: Example) -> list[dict]:
    """The messages before the last assistant answer: what the model is given at inference."""
    last = max(i for i, m in enumerate(example.messages) if m.role == "assistant")
    return [{"role": m.role, "content": m.content} for m in example.messages[:last]]


def full_messages(example: Example) -> list[dict]:
    return [{"role": m.role, "content": m.content} for m in example.messages]


IGNORE_INDEX = -100
"""Label of a token that carries no loss (PyTorch's cross-entropy default)."""


@dataclass
class Tokenized:
    """One example as token ids, with the loss mask folded into `labels`.

        text:    <|im_start|>user\\nrefund pls<|im_end|>\\n<|im_start|>assistant\\nbilling<|im_end|>\\n
        labels:  -100 ...................................................... billing <|im_end|> \\n

    Only assistant answers carry loss (with the end-of-turn token the template puts after them,
    so the model learns to stop), and only answers whose weight is not 0.
    """

    input_ids: list[int]
    labels: list[int]
    truncated: bool = False

    @property
    def n_loss_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE_INDEX)


def tokenize_example(
    tokenizer: PreTrainedTokenizerBase, example: Example, max_seq_len: int
) -> Tokenized:
    """Render `example` with the chat template and mark the tokens that carry loss.

    The conversation is rendered once per assistant turn: `render(messages[:i], generation
    prompt)` ends where answer i starts and `render(messages[:i+1])` where it ends. Each piece
    is tokenized on its own, exactly as at inference, where the prompt is tokenized and the
    answer generated after it.

    Raises:
        TunesmithError: the chat template is not prefix-consistent (an earlier turn renders
            differently once later turns follow), so answer spans cannot be located.
    """
    messages = full_messages(example)
    template = chat_template(tokenizer)
    pieces: list[tuple[str, bool]] = []  # (text, carries loss)
    done = ""
    for i, m in enumerate(example.messages):
        if m.role != "assistant":
            continue
        start = tokenizer.apply_chat_template(messages[:i], tokenize=False, chat_template=template,
                                              add_generation_prompt=True) if i else ""
        end = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False,
                                            chat_template=template)
        if not start.startswith(done) or not end.startswith(start):
            raise TunesmithError(
                "the model's chat template renders earlier turns differently once later turns "
                "follow, so tunesmith cannot find the answer tokens; give a template with "
                "--chat-template or train on single-turn examples.")
        pieces += [(start[len(done):], False), (end[len(start):], m.weight != 0)]
        done = end
    full = tokenizer.apply_chat_template(messages, tokenize=False, chat_template=template)
    pieces.append((full[len(done):], False))
    input_ids: list[int] = []
    labels: list[int] = []
    for text, trained in pieces:
        if not text:
            continue
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        input_ids += ids
        labels += ids if trained else [IGNORE_INDEX] * len(ids)
    truncated = len(input_ids) > max_seq_len
    return Tokenized(input_ids[:max_seq_len], labels[:max_seq_len], truncated)
