"""Run a model (loaded here, or behind an endpoint) over a task's test examples under a prompt
configuration, and score it: the same code for a prompted base model and a fine-tuned one.

    backend   LocalBackend(model, tokenizer) or EndpointBackend(client)   (backends.py)
    prompt    PromptConfig: instruction, shots and how they are chosen, calibration
    task      classification / ner / chat: gold, prediction, metrics    (tasks/)
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Literal

from tunesmith.data.examples import Example
from tunesmith.data.taskfile import TaskSpec
from tunesmith.evaluation.tasks import Mode, get_task
from tunesmith.prompting.calibration import label_offsets
from tunesmith.prompting.prompter import PromptConfig, Prompter

__all__ = ["EvalResult", "Mode", "evaluate"]


@dataclass
class EvalResult:
    name: str
    """Row name in reports: `zero-shot`, `5-shot`, `best prompt`, `fine-tuned (lora)`."""
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
    """Wall time per example (batched or concurrent, so it includes their amortisation)."""
    prompt_tokens: float
    """Mean prompt tokens per request (few-shot prompts are long)."""
    completion_tokens: float
    """Mean answer tokens per request (the answer and its end-of-turn token; label scoring: the
    label tree's tokens the search ran)."""
    predictions: list = field(default_factory=list)
    """Per example: the predicted label, entity list, or text."""
    gold: list = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    """Per example: the input text (for showing disagreements)."""
    prompt: dict = field(default_factory=dict)
    """The prompt configuration (`PromptConfig.to_dict()`)."""
    notes: list[str] = field(default_factory=list)
    shared_prompt_tokens: float = 0.0
    """Prompt tokens every request shares (instruction, fixed shots): what a prompt cache or a
    prefix-caching engine reads once. Counted with the model's tokenizer where it is here;
    for an endpoint, its share of the characters times the reported prompt tokens."""
    shared_prompt_counted: bool = True
    """False when `shared_prompt_tokens` is the character-share estimate."""

    @property
    def score(self) -> float:
        return self.metrics[get_task(self.task).metric]

    def to_dict(self, with_predictions: bool = False) -> dict:
        d = asdict(self)
        if not with_predictions:
            for k in ("predictions", "gold", "texts"):
                d.pop(k)
        d["metric"] = get_task(self.task).metric
        d["score"] = self.score
        return d


def evaluate(
    backend, examples: list[Example], spec: TaskSpec, *, prompt: PromptConfig | None = None,
    train: list[Example] = (), name: str = "", kind: Literal["prompt", "fine-tune"] = "prompt",
    mode: Mode = "score", max_new_tokens: int | None = None,
) -> EvalResult:
    """Score `backend` on `examples` (a test or validation split) for the task in `spec`.

    Args:
        backend: a `Backend` (backends.py).
        prompt: instruction, shots and calibration (default: the data set's instruction, no
            shots).
        train: where shots come from.
        mode: classification only: `score` (label log-likelihood) or `generate`.
    """
    prompt = prompt or PromptConfig()
    task = get_task(spec.task)
    mode = mode if task.labelled else "generate"  # only labels can be scored
    prompter = Prompter(spec, list(train), prompt)
    conversations = prompter.conversations(examples)
    start = time.perf_counter()
    offsets = None
    if prompt.calibrate and mode == "score":
        labels = spec.labels or sorted({task.gold(e) for e in examples})
        offsets = label_offsets(backend, prompter, examples, labels)
    predicted = task.predict(backend, examples, conversations, spec, mode=mode,
                             max_new_tokens=max_new_tokens, offsets=offsets)
    seconds = time.perf_counter() - start
    gold = [task.gold(e) for e in examples]
    metrics = {**task.metrics(gold, predicted.values, spec), **predicted.metrics}
    n = len(examples)
    metrics["invalid_rate"] = predicted.invalid / n if n else 0.0
    default_name = f"{prompt.shots}-shot" if prompt.shots else "zero-shot"
    mean_prompt = sum(predicted.prompt_tokens) / max(n, 1)
    shared, counted = shared_prompt_tokens(backend, conversations, mean_prompt)
    return EvalResult(
        name or default_name, kind, prompt.shots, spec.task, getattr(backend, "name", ""),
        predicted.mode, n, metrics, predicted.invalid, seconds / max(n, 1),
        sum(predicted.prompt_tokens) / max(n, 1), sum(predicted.completion_tokens) / max(n, 1),
        predicted.values, gold, [e.prompt_key for e in examples], prompt.to_dict(),
        predicted.notes, shared, counted)


def shared_prompt_tokens(backend, conversations: list[list[dict]],
                         mean_prompt_tokens: float) -> tuple[float, bool]:
    """(tokens of the prompt prefix every conversation shares, counted exactly?). A backend
    with a tokenizer counts them (`shared_prompt_tokens`); otherwise the shared share of the
    conversations' characters times the mean prompt tokens. One conversation shares nothing."""
    if len(conversations) < 2:
        return 0.0, True
    count = getattr(backend, "shared_prompt_tokens", None)
    if count is not None:
        return float(count(conversations)), True
    texts = [json.dumps(c, ensure_ascii=False) for c in conversations]
    common = len(os.path.commonprefix(texts))
    mean_chars = sum(map(len, texts)) / len(texts)
    return mean_prompt_tokens * common / max(mean_chars, 1), False
