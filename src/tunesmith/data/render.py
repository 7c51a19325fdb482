"""Rendering chat examples to the text and tokens a model sees, with the model's chat template.

A tokenizer without a chat template (GPT-2, Pythia, most base models) gets ChatML, the format
SmolLM2 and Qwen use:

    <|im_start|>system\\nClassify ...<|im_end|>\\n<|im_start|>user\\nrefund pls<|im_end|>\\n
    <|im_start|>assistant\\nbilling<|im_end|>\\n

Tool calls reach the template as Hugging Face templates expect them, with the arguments parsed
(Qwen2.5's template writes `tool_call.arguments | tojson`), and the row's `tools` as `tools=`:

    {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "get_weather",
     "arguments": "{\\"city\\": \\"Paris\\"}"}}]}                    (OpenAI's row)
      -> {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function":
          {"name": "get_weather", "arguments": {"city": "Paris"}}}]}  (the template's input)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tunesmith.data.examples import Example, Message
from tunesmith.errors import TunesmithError, UsageError

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
    add_generation_prompt: bool = False, tools: list[dict] | None = None,
) -> list[str]:
    """Render many conversations at once (the template is compiled once); `tools` are offered
    in each of them."""
    if not conversations:
        return []
    return tokenizer.apply_chat_template(
        conversations, tokenize=False, add_generation_prompt=add_generation_prompt,
        chat_template=chat_template(tokenizer), **_tools_kw(tools),
    )


def prompt_messages(example: Example) -> list[dict]:
    """The messages before the last assistant answer: what the model is given at inference."""
    last = max(i for i, m in enumerate(example.messages) if m.role == "assistant")
    return [template_message(m) for m in example.messages[:last]]


def full_messages(example: Example) -> list[dict]:
    return [template_message(m) for m in example.messages]


def template_message(m: Message) -> dict:
    """One message as chat templates take it (see the module docstring)."""
    d: dict = {"role": m.role, "content": m.content}
    if m.tool_calls:
        d["tool_calls"] = [template_tool_call(c) for c in m.tool_calls]
    if m.tool_call_id is not None:
        d["tool_call_id"] = m.tool_call_id
    if m.name is not None:
        d["name"] = m.name
    return d


def template_tool_call(call: dict) -> dict:
    """An OpenAI tool call with its JSON-string arguments parsed into a dict (left as they are
    when they are not JSON: the data checks report those)."""
    fn = call.get("function") or {}
    args = fn.get("arguments")
    try:
        args = json.loads(args) if isinstance(args, str) else args
    except ValueError:
        pass
    out = {"type": "function", "function": {"name": fn.get("name"), "arguments": args}}
    if "id" in call:
        out["id"] = call["id"]
    return out


def _tools_kw(tools: list[dict] | None) -> dict:
    # Only when given: a template that knows no tools then renders exactly as before.
    return {"tools": tools} if tools else {}


_PROBE_TOOL, _PROBE_CALL = "tunesmith_probe_tool", "tunesmith_probe_call"


def supports_tools(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the chat template renders tools and tool calls: a probe conversation offering
    one tool and calling another must show both names (ChatML and SmolLM2's template drop
    them; a template that fails on a tool message cannot render them either)."""
    text = _probe(tokenizer)
    return text is not None and _PROBE_TOOL in text and _PROBE_CALL in text


def writes_hermes_calls(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the template writes an assistant's tool calls as Hermes `<tool_call>` blocks
    (Qwen2.5, Hermes): the format `serve` parses, and may start for the model."""
    text = _probe(tokenizer)
    return text is not None and _PROBE_CALL in text and "<tool_call>" in text


def _probe(tokenizer: PreTrainedTokenizerBase) -> str | None:
    """The probe conversation as the template renders it; None if the template fails on it."""
    tools = [{"type": "function", "function": {
        "name": _PROBE_TOOL, "description": "probe", "parameters": {"type": "object"}}}]
    messages = [{"role": "user", "content": "hi"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"type": "function", "function": {"name": _PROBE_CALL, "arguments": {}}}]},
                {"role": "tool", "content": "ok", "tool_call_id": "call_0"},
                {"role": "assistant", "content": "done"}]
    try:
        return render(tokenizer, [messages], tools=tools)[0]
    except Exception:  # noqa: BLE001 - any template error means: cannot render tools
        return None


def check_tools(tokenizer: PreTrainedTokenizerBase, examples: list, model_name: str,
                source: str = "the data") -> None:
    """Refuse examples with tools, tool calls or tool results when the template cannot render
    them (it would silently drop them, and the model would learn answers without their calls).

    Raises:
        UsageError: names the model and the first example that uses tools.
    """
    first = next((e for e in examples if getattr(e, "uses_tools", False)), None)
    if first is None or supports_tools(tokenizer):
        return
    raise UsageError(
        f"model {model_name}'s chat template cannot render tool calls (line {first.line} of "
        f"{source} uses tools); use a model whose template supports tools, e.g. "
        "Qwen2.5-Instruct, or drop the tools.")


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

    input_ids: list[int] | np.ndarray
    """A list, or (`tokencache`) an int32 view into one array holding a whole data set."""
    labels: list[int] | np.ndarray
    truncated: bool = False

    @property
    def n_loss_tokens(self) -> int:
        if isinstance(self.labels, np.ndarray):
            return int(np.count_nonzero(self.labels != IGNORE_INDEX))
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
    input_ids: list[int] = []
    labels: list[int] = []
    for text, trained in pieces_of(tokenizer, example):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        input_ids += ids
        labels += ids if trained else [IGNORE_INDEX] * len(ids)
    truncated = len(input_ids) > max_seq_len
    return Tokenized(input_ids[:max_seq_len], labels[:max_seq_len], truncated)


def pieces_of(tokenizer: PreTrainedTokenizerBase, example: Example) -> list[tuple[str, bool]]:
    """The rendered conversation cut where loss starts and stops: (text, carries loss) pieces,
    none empty (see `tokenize_example`)."""
    messages = full_messages(example)
    template = chat_template(tokenizer)
    tools = _tools_kw(example.tools)
    pieces: list[tuple[str, bool]] = []  # (text, carries loss)
    done = ""
    for i, m in enumerate(example.messages):
        if m.role != "assistant":
            continue
        start = tokenizer.apply_chat_template(messages[:i], tokenize=False, chat_template=template,
                                              add_generation_prompt=True, **tools) if i else ""
        end = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False,
                                            chat_template=template, **tools)
        if not start.startswith(done) or not end.startswith(start):
            raise TunesmithError(
                "the model's chat template renders earlier turns differently once later turns "
                "follow, so tunesmith cannot find the answer tokens; give a template with "
                "--chat-template or train on single-turn examples.")
        pieces += [(start[len(done):], False), (end[len(start):], m.weight != 0)]
        done = end
    if example.messages[-1].role != "assistant":  # else the last `end` was the whole of it
        full = tokenizer.apply_chat_template(messages, tokenize=False, chat_template=template,
                                             **tools)
        pieces.append((full[len(done):], False))
    return [(text, trained) for text, trained in pieces if text]
