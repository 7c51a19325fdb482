"""Rendering chat examples to the text a model sees, with the model's own chat template.

A tokenizer without a chat template (GPT-2, Pythia, most base models) gets ChatML, the format
SmolLM2 and Qwen use:

    <|im_start|>system\\nClassify ...<|im_end|>\\n<|im_start|>user\\nrefund pls<|im_end|>\\n
    <|im_start|>assistant\\nbilling<|im_end|>\\n
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunesmith.data.examples import Example

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
