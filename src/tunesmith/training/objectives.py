"""What a run learns (`--head`): the answers as text, or a task head on the same base model.

    lm          the assistant's answer, token by token (`AutoModelForCausalLM`); the default
    classifier  one label per example from the hidden state of the prompt's last token
                (`AutoModelForSequenceClassification`, last-token pooling): one forward pass per
                example at inference, no label tree, no invalid answers
    token       a BIO tag per word from the hidden state of its first sub-token
                (`AutoModelForTokenClassification`); the other sub-tokens carry no target

Every objective turns examples into `Tokenized` items whose `labels` hold its targets, so the
loop, packing, checkpoints and DDP are shared. For a head, a target sits at the position whose
hidden state predicts it (no shift), as a class index:

    classifier  <|im_start|>system ... <|im_start|>user\\nrefund pls<|im_end|>\\n<|im_start|>assistant\\n
    labels      -100 ............................................................... 3 (billing)

    token       ... user\\n  Mike    vick  in  Chapel   Hill  <|im_end|> ...
    sub-tokens             Mi ke   vick  in  Chap el  Hill
    labels      -100 ...   1  -100 0     0   3    -100 4    -100        (B-person O O B-loc I-loc)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.data.examples import Example
from tunesmith.data.ner import bio_to_entities
from tunesmith.data.packing import Batch, micro_batches
from tunesmith.data.render import IGNORE_INDEX, Tokenized, chat_template, tokenize_example
from tunesmith.data.taskfile import TaskSpec
from tunesmith.data.validate import label_of, parse_entities
from tunesmith.errors import UsageError
from tunesmith.training.loss import CausalLMLoss, hf_model

Head = Literal["lm", "classifier", "token"]
HEADS: tuple[Head, ...] = ("lm", "classifier", "token")
TASK_OF_HEAD = {"classifier": "classification", "token": "ner"}
_SENTINEL = "\u2063TUNESMITH-INPUT\u2063"
ECHO = True
"""The token head reads the sentence twice and tags the second copy (see `word_ids`). Measured
on WNUT-17 (400 sentences, LoRA, 2e-4, 3 epochs): entity F1 0.087 once, 0.128 twice."""


@dataclass
class Objective:
    head: Head
    labels: list[str]
    """The head's classes: the label set, or the BIO tags (`O`, `B-type`, `I-type`, ...)."""

    @property
    def lora_task_type(self) -> str:
        return {"lm": "CAUSAL_LM", "classifier": "SEQ_CLS", "token": "TOKEN_CLS"}[self.head]

    def meta(self) -> dict:
        """What final/tunesmith.json records about the objective."""
        return {"head": self.head, "head_labels": self.labels if self.head != "lm" else None}

    def tokenize(self, tokenizer, example: Example, max_seq_len: int) -> Tokenized:
        if self.head == "lm":
            return tokenize_example(tokenizer, example, max_seq_len)
        if self.head == "classifier":
            ids = prompt_ids(tokenizer, example_messages(example))
            truncated = len(ids) > max_seq_len
            ids = ids[-max_seq_len:]  # keep the end: the pooled token and the text before it
            labels = [IGNORE_INDEX] * len(ids)
            labels[-1] = self.labels.index(label_of(example))
            return Tokenized(ids, labels, truncated)
        words = example_words(example)
        tags = bio_tags(words, parse_entities(example.target) or [])
        ids, starts = word_ids(tokenizer, example_messages(example), words)
        labels = [IGNORE_INDEX] * len(ids)
        for start, tag in zip(starts, tags):
            labels[start] = self.labels.index(tag)
        truncated = len(ids) > max_seq_len
        return Tokenized(ids[:max_seq_len], labels[:max_seq_len], truncated)

    def load(self, spec: str, *, dtype=None, device=None, quantization=None) -> nn.Module:
        """The base model with this objective's output layer (a new head is seeded by the
        caller's torch seed); `quantization`: QLoRA's config for the base weights."""
        from tunesmith.modeling import (
            base_load_kwargs,
            load_model,
            load_tokenizer,
            model_dir,
            resolve_model,
        )

        if self.head == "lm":
            return load_model(spec, device=device, dtype=dtype, quantization=quantization)
        ref = resolve_model(spec)
        if ref.is_adapter:
            raise UsageError(f"--head {self.head} starts from a base model; {spec} is a LoRA "
                             "adapter (continued fine-tuning of adapters is not supported yet).")
        model = head_class(self.head).from_pretrained(
            model_dir(ref), num_labels=len(self.labels),
            id2label=dict(enumerate(self.labels)),
            label2id={label: i for i, label in enumerate(self.labels)},
            **base_load_kwargs(dtype, device, quantization))
        tokenizer = load_tokenizer(ref)
        model.config.pad_token_id = tokenizer.pad_token_id  # last-token pooling finds padding
        return model.to(device) if device is not None and quantization is None else model

    def loss(self, model: nn.Module) -> nn.Module:
        return CausalLMLoss(model) if self.head == "lm" else HeadLoss(model)

    def batches(self, items: list[Tokenized], pack: bool, max_tokens: int,
                pad_id: int) -> list[Batch]:
        """One optimizer step's items as forward passes."""
        return micro_batches(items, pack, max_tokens, pad_id)


def objective_for(head: Head, spec: TaskSpec | None, examples: list[Example]) -> Objective:
    """The objective of a run, its classes taken from task.json or else from the examples.

    Raises:
        UsageError: a head for a task it does not fit (a classifier on NER data, ...).
    """
    if head == "lm":
        return Objective("lm", [])
    task = spec.task if spec else None
    if task is not None and task != TASK_OF_HEAD[head]:
        raise UsageError(f"--head {head} is for {TASK_OF_HEAD[head]} data; this is {task} data "
                         "(use --head lm).")
    if head == "classifier":
        labels = list(spec.labels) if spec and spec.labels else sorted({label_of(e)
                                                                         for e in examples})
        return Objective("classifier", labels)
    types = list(spec.labels) if spec and spec.labels else sorted(
        {x["type"] for e in examples for x in parse_entities(e.target) or []})
    return Objective("token", ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")])


def head_class(head: Head):
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    return {"classifier": AutoModelForSequenceClassification,
            "token": AutoModelForTokenClassification}[head]


class HeadLoss(nn.Module):
    """Forward returns (sum of losses, targets, correctly classified targets), as CausalLMLoss:
    the head runs only at the positions that carry a target."""

    stats = ("mean_token_accuracy",)

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        from tunesmith.training.attention import use_packed_attention

        use_packed_attention(model)
        self.model = model
        inner = hf_model(model)
        self.body = inner.base_model if inner.base_model is not inner else inner.model
        self.head = inner.score

    def forward(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        extra = {"packed_segments": batch.segments} if batch.segments is not None else {}
        hidden = self.body(input_ids=batch.input_ids, position_ids=batch.position_ids,
                           attention_mask=batch.attention_mask, use_cache=False,
                           **extra).last_hidden_state  # (B, T, H)
        keep = batch.labels != IGNORE_INDEX
        logits = self.head(hidden[keep]).float()  # (N, classes)
        targets = batch.labels[keep]
        loss_sum = F.cross_entropy(logits, targets, reduction="sum")
        return loss_sum, keep.sum(), (logits.argmax(-1) == targets).sum()


# ---- the inputs a head sees -------------------------------------------------------------------


def example_messages(example: Example) -> list[dict]:
    """The messages before the answer (system and user turns)."""
    from tunesmith.data.render import prompt_messages

    return prompt_messages(example)


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """The rendered prompt up to where the answer would start, as token ids."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                         chat_template=chat_template(tokenizer))
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def example_words(example: Example) -> list[str]:
    """An NER example's words: its last user message split at spaces (as `data prepare` joined
    the tokens)."""
    user = [m for m in example.messages if m.role == "user"][-1].content
    return user.split(" ")


def word_ids(tokenizer, messages: list[dict], words: list[str],
             echo: bool = ECHO) -> tuple[list[int], list[int]]:
    """The prompt's token ids with the last user message written word by word, and the
    position of each word's first sub-token.

    The template is rendered around a sentinel standing for the user's text; the text before
    and after it, and each word (with its leading space), are tokenized on their own, so every
    word starts a token. With `echo` the text is written twice (a line break between) and the
    words are marked in the second copy: a causal model's hidden state at a word then has seen
    the whole sentence, right context included (Springer et al. 2024, "Repetition Improves
    Language Model Embeddings"), and the model stays a plain causal one.
    """
    *context, last = messages
    text = tokenizer.apply_chat_template([*context, {**last, "content": _SENTINEL}], tokenize=False,
                                         add_generation_prompt=True,
                                         chat_template=chat_template(tokenizer))
    before, after = text.split(_SENTINEL)
    ids = tokenizer(before, add_special_tokens=False)["input_ids"]
    if echo:
        ids += tokenizer(" ".join(words) + "\n", add_special_tokens=False)["input_ids"]
    starts = []
    for i, word in enumerate(words):
        piece = tokenizer((" " if i else "") + word, add_special_tokens=False)["input_ids"] or \
            tokenizer.convert_tokens_to_ids([tokenizer.unk_token or tokenizer.eos_token])
        starts.append(len(ids))
        ids += piece
    ids += tokenizer(after, add_special_tokens=False)["input_ids"]
    return ids, starts


def bio_tags(words: list[str], entities: list[dict]) -> list[str]:
    """BIO tags of `words` for entities given as {"text", "type"} in text order: each entity is
    matched, word by word, at its first occurrence after the previous one.

    Example:
        >>> bio_tags(["Mike", "met", "Chapel", "Hill"], [{"text": "Chapel Hill", "type": "loc"}])
        ['O', 'O', 'B-loc', 'I-loc']
    """
    tags = ["O"] * len(words)
    at = 0
    for entity in entities:
        span = entity["text"].split(" ")
        for start in range(at, len(words) - len(span) + 1):
            if words[start:start + len(span)] == span:
                tags[start] = "B-" + entity["type"]
                for k in range(start + 1, start + len(span)):
                    tags[k] = "I-" + entity["type"]
                at = start + len(span)
                break
    return tags


def entities_from_tags(words: list[str], tags: list[str]) -> str:
    """The JSON entity list (the answer an LM would write) of predicted BIO tags; an `I-` that
    continues no span starts one (the conlleval repair)."""
    return json.dumps([e.to_dict() for e in bio_to_entities(words, tags)], ensure_ascii=False)


# ---- a trained head, for inference ------------------------------------------------------------


def head_of(folder) -> tuple[Head, list[str]] | None:
    """(head, its classes) of a final/ folder trained with a head; None for an LM."""
    from pathlib import Path

    meta_path = Path(folder) / "tunesmith.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    head = meta.get("head", "lm")
    return (head, list(meta.get("head_labels") or [])) if head in ("classifier", "token") else None


def load_head_model(folder):
    """A head model from final/ with plain transformers/PEFT (`AutoPeftModelFor...` for an
    adapter, `AutoModelFor...` for a full fine-tune), adapters merged, in eval mode (bf16 where
    the hardware is fast at it, as `load_for_inference`)."""
    from pathlib import Path

    from tunesmith.modeling import load_tokenizer
    from tunesmith.training.distributed import supports_bf16

    head, _ = head_of(folder)
    folder = Path(folder)
    if (folder / "adapter_config.json").is_file():
        from peft import AutoPeftModelForSequenceClassification, AutoPeftModelForTokenClassification

        cls = {"classifier": AutoPeftModelForSequenceClassification,
               "token": AutoPeftModelForTokenClassification}[head]
        model = cls.from_pretrained(folder).merge_and_unload()
    else:
        model = head_class(head).from_pretrained(folder)
    target = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if supports_bf16(target):
        model = model.to(torch.bfloat16)
    model.to(target).eval()
    return model, load_tokenizer(str(folder))


def write_head_base(folder, final, model: nn.Module, base_path: str) -> None:
    """Make a LoRA head's final/ load with plain PEFT (`AutoPeftModelFor...Classification`).

    PEFT rebuilds the base model from `base_model_name_or_path` with that folder's config, which
    knows neither the number of labels nor their names nor the padding token (last-token pooling
    needs it). final/base/ holds the head's config beside links to the base weights, and the
    adapter points there; the trained head itself is in the adapter (`modules_to_save`).

    Args:
        folder: the folder being written (renamed to `final` when complete).
        final: where it will live.
        base_path: the base model's folder (its weights are linked, not copied).
    """
    import copy
    import os
    import shutil
    from pathlib import Path

    folder, final, source = Path(folder), Path(final).resolve(), Path(base_path)
    base = folder / "base"
    base.mkdir()
    config = copy.deepcopy(hf_model(model).config)
    if hasattr(config, "quantization_config"):  # QLoRA: the adapter applies to the plain base
        del config.quantization_config
    config.save_pretrained(base)
    for weights in source.iterdir():
        if weights.name.endswith((".safetensors", ".safetensors.index.json", ".bin")):
            try:
                os.symlink(weights.resolve(), base / weights.name)
            except OSError:  # a file system without symbolic links
                shutil.copy2(weights, base / weights.name)
    adapter = folder / "adapter_config.json"
    config = json.loads(adapter.read_text())
    config["base_model_name_or_path"] = str(final / "base")
    adapter.write_text(json.dumps(config, indent=2))
