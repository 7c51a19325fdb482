"""Task heads beside the language-model head: what a head model is built from, the inputs it
reads, and how a trained one is found and loaded.

    classifier  one label per example from the hidden state of the prompt's last token
                (`AutoModelForSequenceClassification`, last-token pooling)
    token       a BIO tag per word from the hidden state of its first sub-token
                (`AutoModelForTokenClassification`)

Training (`training/objectives.py`) and inference (`evaluation/backends.py`, `serve`) both use
these, so they live beside `modeling.py`, below both.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from tunesmith.data.examples import Example
from tunesmith.data.ner import bio_to_entities
from tunesmith.data.render import chat_template, prompt_messages
from tunesmith.modeling import hf_model, load_tokenizer, supports_bf16

Head = Literal["lm", "classifier", "token"]
HEADS: tuple[Head, ...] = ("lm", "classifier", "token")
_SENTINEL = "\u2063TUNESMITH-INPUT\u2063"
ECHO = True
"""The token head reads the sentence twice and tags the second copy (see `word_ids`). Measured
on WNUT-17 (400 sentences, LoRA, 2e-4, 3 epochs): entity F1 0.087 once, 0.128 twice."""


def head_class(head: Head):
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    return {"classifier": AutoModelForSequenceClassification,
            "token": AutoModelForTokenClassification}[head]




# ---- the inputs a head sees -------------------------------------------------------------------


def example_messages(example: Example) -> list[dict]:
    """The messages before the answer (system and user turns)."""
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
