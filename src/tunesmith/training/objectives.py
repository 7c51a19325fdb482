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

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.data.answers import label_of, parse_entities
from tunesmith.data.examples import Example
from tunesmith.data.packing import Batch, micro_batches
from tunesmith.data.render import IGNORE_INDEX, Tokenized, tokenize_example
from tunesmith.data.taskfile import TaskSpec
from tunesmith.data.tasks import TASK_KINDS, task_kind
from tunesmith.errors import UsageError
from tunesmith.heads import (
    Head,
    bio_tags,
    example_messages,
    example_words,
    head_class,
    prompt_ids,
    word_ids,
)
from tunesmith.modeling import (
    base_load_kwargs,
    hf_model,
    load_model,
    load_tokenizer,
    model_dir,
    resolve_model,
)
from tunesmith.training.attention import use_packed_attention
from tunesmith.training.loss import CausalLMLoss


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
                pad_id: int, share_prefix: bool = False) -> list[Batch]:
        """One optimizer step's items as forward passes; `share_prefix`: the answers' common
        prompt prefix once per row (the LM objective; a head's target sits at the prompt's
        end)."""
        return micro_batches(items, pack, max_tokens, pad_id,
                             share_prefix=share_prefix and self.head == "lm")


def objective_for(head: Head | str, spec: TaskSpec | None,
                  examples: list[Example]) -> Objective:
    """The objective of a run, its classes taken from task.json or else from the examples;
    `head` "task" is the head of the data's task (task.json).

    Raises:
        UsageError: a head for a task it does not fit (a classifier on NER data, ...).
    """
    if head == "lm":
        return Objective("lm", [])
    task = spec.task if spec else None
    if head == "task":
        if task is None:
            raise UsageError("--method lora-head / full-head (--head task) trains the head of the "
                             "data's task, named by task.json beside the training file (`tunesmith "
                             "data prepare` writes it); or name it: --head classifier or token.")
        head = task_kind(task).head
        if head is None:
            raise UsageError(f"a {task} task has no head; use --method lora or full.")
    owner = next(k.name for k in TASK_KINDS.values() if k.head == head)
    if task is not None and task != owner:
        raise UsageError(f"--head {head} is for {owner} data; this is {task} data "
                         "(use --head lm).")
    if head == "classifier":
        labels = list(spec.labels) if spec and spec.labels else sorted({label_of(e)
                                                                         for e in examples})
        return Objective("classifier", labels)
    types = list(spec.labels) if spec and spec.labels else sorted(
        {x["type"] for e in examples for x in parse_entities(e.target) or []})
    return Objective("token", ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")])


class HeadLoss(nn.Module):
    """Forward returns (sum of losses, targets, correctly classified targets), as CausalLMLoss:
    the head runs only at the positions that carry a target."""

    stats = ("mean_token_accuracy",)

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        use_packed_attention(model)
        self.model = model
        inner = hf_model(model)
        self.body = inner.base_model if inner.base_model is not inner else inner.model
        self.head = inner.score

    def forward(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hidden = self.body(input_ids=batch.input_ids, position_ids=batch.position_ids,
                           attention_mask=batch.attention_mask, use_cache=False,
                           **batch.model_inputs()).last_hidden_state  # (B, T, H)
        keep = batch.labels != IGNORE_INDEX
        logits = self.head(hidden[keep]).float()  # (N, classes)
        targets = batch.labels[keep]
        loss_sum = F.cross_entropy(logits, targets, reduction="sum")
        return loss_sum, keep.sum(), (logits.argmax(-1) == targets).sum()


