"""Run a model over a task's test examples and score it: the same code for a prompted base model
and a fine-tuned one.

    classification  label log-likelihood over the label tree (default), or generate-and-parse
    ner             generate the JSON entity list, entity-level P/R/F1
    chat            loss/perplexity on the reference answers, plus generated exact match/token F1
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Literal

from tunesmith.data.examples import Example, Message
from tunesmith.data.render import render, tokenize_example
from tunesmith.data.taskfile import TaskSpec
from tunesmith.data.validate import label_of
from tunesmith.data.validate import parse_entities as parse_gold_entities
from tunesmith.evaluation.metrics import (
    classification_metrics,
    entity_metrics,
    exact_match,
    token_f1,
)
from tunesmith.evaluation.parsing import parse_entities, parse_label
from tunesmith.evaluation.scoring import SearchStats, answer_tokens, score_labels
from tunesmith.generation import generate
from tunesmith.prompting.fewshot import prompt_with_shots

TASK_METRIC = {"classification": "macro_f1", "ner": "f1", "chat": "token_f1"}
"""The metric each task is decided on."""
METRIC_NAMES = {"macro_f1": "macro-F1", "f1": "entity F1", "token_f1": "token F1",
                "accuracy": "accuracy"}

Mode = Literal["score", "generate"]


@dataclass
class EvalResult:
    name: str
    """Row name in reports: `zero-shot`, `5-shot`, `fine-tuned (lora)`."""
    kind: Literal["prompt", "fine-tune"]
    shots: int
    task: str
    model: str
    mode: Mode
    n: int
    metrics: dict
    """Task metrics; see evaluation.metrics. Always has the task's main metric."""
    invalid: int
    """Outputs that named no label / held no readable entity list."""
    latency_s: float
    """Wall time per example (batched, so it includes batching's amortisation)."""
    prompt_tokens: float
    """Mean prompt tokens per request (few-shot prompts are long)."""
    completion_tokens: float
    """Mean answer tokens per request (the answer and its end-of-turn token)."""
    predictions: list = field(default_factory=list)
    """Per example: the predicted label, entity list, or text."""
    gold: list = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    """Per example: the input text (for showing disagreements)."""

    @property
    def score(self) -> float:
        return self.metrics[TASK_METRIC[self.task]]

    def to_dict(self, with_predictions: bool = False) -> dict:
        d = asdict(self)
        if not with_predictions:
            for k in ("predictions", "gold", "texts"):
                d.pop(k)
        d["metric"] = TASK_METRIC[self.task]
        d["score"] = self.score
        return d


def evaluate(
    model, tokenizer, examples: list[Example], spec: TaskSpec, *, shots: list[Example] = (),
    name: str = "", kind: Literal["prompt", "fine-tune"] = "prompt", model_name: str = "",
    mode: Mode = "score", batch_size: int = 16, max_new_tokens: int | None = None,
    scoring_stats: SearchStats | None = None,
) -> EvalResult:
    """Score `model` on `examples` (a test split) for the task in `spec`. Label scoring adds
    what its search ran to `scoring_stats`, when given."""
    shots = list(shots)
    prompts = render(tokenizer, [prompt_with_shots(e, shots, spec.system) for e in examples],
                     add_generation_prompt=True)
    prompt_tokens = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    texts = [e.prompt_key for e in examples]
    start = time.perf_counter()
    if spec.task == "classification":
        gold = [label_of(e) for e in examples]
        labels = spec.labels or sorted(set(gold))
        if mode == "score":
            scores = score_labels(model, tokenizer, prompts, labels, batch_size,
                                  stats=scoring_stats)
            pred: list = [labels[i] for i in scores.argmax(-1).tolist()]
            lengths = {label: len(answer_tokens(tokenizer, label)) for label in labels}
            completion = [lengths[p] for p in pred]
        else:
            longest = max(len(answer_tokens(tokenizer, label)) for label in labels)
            outs = generate(model, tokenizer, prompts, max_new_tokens or longest + 4, batch_size)
            pred = [parse_label(o.text, labels) for o in outs]
            completion = [o.completion_tokens for o in outs]
        metrics = classification_metrics(gold, pred, labels)
        invalid = metrics["invalid"]
    elif spec.task == "ner":
        gold = [[(x["text"], x["type"]) for x in parse_gold_entities(e.target) or []]
                for e in examples]
        outs = generate(model, tokenizer, prompts, max_new_tokens or 128, batch_size)
        parsed = [parse_entities(o.text) for o in outs]
        invalid = sum(p is None for p in parsed)
        pred = [p or [] for p in parsed]
        metrics = entity_metrics(gold, pred)
        completion = [o.completion_tokens for o in outs]
    else:
        gold = [e.target for e in examples]
        loss = _reference_loss(model, tokenizer, examples, shots, spec.system, batch_size)
        outs = generate(model, tokenizer, prompts, max_new_tokens or 256, batch_size)
        pred = [o.text for o in outs]
        metrics = {"loss": loss, "perplexity": math.exp(min(loss, 50)),
                   "exact_match": sum(map(exact_match, pred, gold)) / len(gold),
                   "token_f1": sum(map(token_f1, pred, gold)) / len(gold)}
        invalid = sum(o.finish_reason == "length" for o in outs)
        completion = [o.completion_tokens for o in outs]
    seconds = time.perf_counter() - start
    n = len(examples)
    metrics["invalid_rate"] = invalid / n if n else 0.0
    return EvalResult(name or (f"{len(shots)}-shot" if shots else "zero-shot"), kind, len(shots),
                      spec.task, model_name, mode if spec.task == "classification" else "generate",
                      n, metrics, invalid, seconds / max(n, 1), sum(prompt_tokens) / max(n, 1),
                      sum(completion) / max(n, 1), pred, gold, texts)


def _reference_loss(model, tokenizer, examples, shots, system, batch_size) -> float:
    """Mean loss per answer token of the reference answers given the prompt (teacher forcing)."""
    import torch

    from tunesmith.data.packing import micro_batches
    from tunesmith.training.loss import CausalLMLoss

    items = []
    for e in examples:
        messages = [Message(m["role"], m["content"], 0 if m["role"] == "assistant" else None)
                    for m in prompt_with_shots(e, shots, system)]
        items.append(tokenize_example(tokenizer, Example(e.line, messages + [
            Message("assistant", e.target)]), 4096))
    loss_fn = CausalLMLoss(model)
    total = count = 0.0
    pad = tokenizer.pad_token_id or 0
    with torch.inference_mode():
        for batch in micro_batches(items, True, 4096 * 4, pad):
            loss, n, _ = loss_fn(batch.to(next(model.parameters()).device))
            total, count = total + loss.item(), count + n.item()
    return total / max(count, 1)
