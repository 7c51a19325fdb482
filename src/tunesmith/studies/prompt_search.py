"""The prompting arm at its best: prompt configurations tried on the validation split, the best
one kept. The test split is never looked at.

A full grid (3 instructions x 5 shot counts x 2 selections x calibration) would be 60
evaluations; the search is greedy in stages instead, ~12 evaluations:

    1. instruction   own / one listing the labels / none, zero-shot
    2. shots         k in {1, 3, 5, 10} x {stratified, similar}, with the best instruction
                     (k is capped by the training split and by the model's context); a
                     selection stops at the first count that scores below the one before it
                     (on the demo data that skips 10 similar shots: a quarter of the search)
    3. calibration   on the best so far (classification scored by label likelihood)

A later stage replaces the best only when it scores strictly higher, so ties keep the simpler
prompt (fewer shots, no calibration).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace

from tunesmith.config import SEARCH_EXAMPLES
from tunesmith.data.examples import Example
from tunesmith.data.taskfile import TaskSpec
from tunesmith.data.tasks import task_kind
from tunesmith.errors import UsageError
from tunesmith.evaluation.runner import evaluate
from tunesmith.prompting.prompter import (
    INSTRUCTIONS,
    SELECTIONS,
    PromptConfig,
    Prompter,
    instruction_text,
)

log = logging.getLogger(__name__)

SHOT_COUNTS = (0, 1, 3, 5, 10)
ANSWER_ROOM = 128
"""Tokens kept free for the answer when capping shots by the context."""


@dataclass
class Candidate:
    config: PromptConfig
    score: float
    """The task metric on the validation split."""
    stage: str

    def to_dict(self) -> dict:
        return {**asdict(self), "config": self.config.to_dict(),
                "description": self.config.describe()}


@dataclass
class SearchResult:
    best: PromptConfig
    best_score: float
    candidates: list[Candidate]
    metric: str
    examples: int
    """Validation examples each candidate was scored on."""

    def to_dict(self) -> dict:
        return {"best": self.best.to_dict(), "best_description": self.best.describe(),
                "best_score": self.best_score, "metric": self.metric, "examples": self.examples,
                "candidates": [c.to_dict() for c in self.candidates]}


def search_prompt(backend, spec: TaskSpec, train: list[Example], validation: list[Example], *,
                  mode: str = "score", seed: int = 0, shot_counts=SHOT_COUNTS,
                  max_new_tokens: int | None = None,
                  max_examples: int | None = SEARCH_EXAMPLES) -> SearchResult:
    """Try prompt configurations on `validation` (shots from `train`) and return the best.
    Each is scored on the first `max_examples` validation examples (the splits are shuffled).

    Raises:
        UsageError: no validation examples.
    """
    if not validation:
        raise UsageError("choosing the prompt needs a validation split (validation.jsonl); "
                         "prepare the data with --val, or give --shots a number.")
    validation = validation[:max_examples] if max_examples else validation
    candidates: list[Candidate] = []
    tried: dict[tuple, float] = {}

    def score(config: PromptConfig, stage: str) -> float:
        key = _key(config, spec)
        if key not in tried:
            result = evaluate(backend, validation, spec, prompt=config, train=train, mode=mode,
                              max_new_tokens=max_new_tokens)
            tried[key] = result.score
            candidates.append(Candidate(config, result.score, stage))
            log.info("prompt search (%s, %d validation examples): %s -> %s %.3f", stage,
                     len(validation), config.describe(), task_kind(spec.task).metric,
                     result.score)
        return tried[key]

    best = PromptConfig(instruction="own", seed=seed)
    best_score = score(best, "instruction")
    for kind in INSTRUCTIONS[1:]:
        config = replace(best, instruction=kind)
        if _key(config, spec) in tried:  # the same text as one tried already
            continue
        s = score(config, "instruction")
        if s > best_score:
            best, best_score = config, s
    fits = _fitting_shots(backend, spec, train, best, shot_counts)
    base = best
    previous: dict[str, float] = {}  # each selection's score at the last count it tried
    for k in fits:
        for selection in SELECTIONS:
            if selection not in previous and k != fits[0]:
                continue  # stopped: more shots scored less
            s = score(replace(base, shots=k, selection=selection), "shots")
            if s > best_score:
                best, best_score = replace(base, shots=k, selection=selection), s
            if selection in previous and s < previous[selection]:
                del previous[selection]
            else:
                previous[selection] = s
    if task_kind(spec.task).labelled and mode == "score":
        s = score(replace(best, calibrate=True), "calibration")
        if s > best_score:
            best, best_score = replace(best, calibrate=True), s
    return SearchResult(best, best_score, candidates, task_kind(spec.task).metric,
                        len(validation))


def _key(config: PromptConfig, spec: TaskSpec) -> tuple:
    """Configurations that build the same prompts share a key (e.g. `own` and `labels` when the
    data set's instruction is the generated one; the selection when there are no shots)."""
    return (instruction_text(config.instruction, spec), config.shots,
            config.selection if config.shots else None, config.calibrate)


def _fitting_shots(backend, spec: TaskSpec, train: list[Example], config: PromptConfig,
                   counts) -> list[int]:
    """Shot counts above 0 that the training split can supply and, where the backend knows its
    context length and can count tokens, whose longest prompt leaves room for the answer."""
    usable = [k for k in counts if 0 < k <= len(train)]
    context = getattr(backend, "context", None)
    lengths = getattr(backend, "prompt_lengths", None)
    if not context or lengths is None or not train:
        return usable
    fitting = []
    for k in usable:
        prompter = Prompter(spec, train, replace(config, shots=k))
        sample = train[:8]
        if max(lengths(prompter.conversations(sample))) + ANSWER_ROOM <= context:
            fitting.append(k)
    return fitting
