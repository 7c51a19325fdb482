"""Classification: one label per input, scored by label log-likelihood (or generated and
parsed); accuracy, macro-F1, per-class P/R/F1 and the confusion matrix."""

from __future__ import annotations

import numpy as np

from tunesmith.data.answers import label_of
from tunesmith.data.examples import Example
from tunesmith.data.taskfile import TaskSpec
from tunesmith.data.tasks import Classification
from tunesmith.evaluation.metrics import classification_metrics, macro_f1_sampler, mean_sampler
from tunesmith.evaluation.parsing import parse_label
from tunesmith.evaluation.tasks.base import EvalTask, Mode, Predictions


class ClassificationTask(Classification, EvalTask):

    def gold(self, example: Example) -> str:
        return label_of(example)

    def labels(self, spec: TaskSpec, examples: list[Example]) -> list[str]:
        return spec.labels or sorted({label_of(e) for e in examples})

    def predict(self, backend, examples: list[Example], conversations: list[list[dict]],
                spec: TaskSpec, *, mode: Mode, max_new_tokens: int | None,
                offsets: np.ndarray | None) -> Predictions:
        labels = self.labels(spec, examples)
        room = max_new_tokens or backend.answer_room(labels)
        if mode == "generate":
            outs = backend.generate(conversations, room)
            pred = [parse_label(o.text, labels) for o in outs]
            return Predictions(pred, sum(p is None for p in pred),
                               [o.prompt_tokens for o in outs],
                               [o.completion_tokens for o in outs], "generate")
        scored = backend.label_scores(conversations, labels, offsets=offsets)
        pred: list[str | None] = [labels[j] for j in scored.scores.argmax(-1)]
        completion = list(scored.completion_tokens)
        prompt = list(scored.prompt_tokens)
        notes = []
        if scored.undecided:
            rows = scored.undecided
            outs = backend.generate([conversations[r] for r in rows], room)
            for r, o in zip(rows, outs):
                pred[r] = parse_label(o.text, labels)
                completion[r], prompt[r] = o.completion_tokens, o.prompt_tokens or prompt[r]
            notes.append(f"{len(rows)} of {len(pred)} answers were generated and parsed: "
                         f"{scored.method} could not decide them (labels sharing their first "
                         "token, or no log-probabilities from the endpoint).")
        return Predictions(pred, sum(p is None for p in pred), prompt, completion, "score",
                           notes=notes)

    def metrics(self, gold: list, pred: list, spec: TaskSpec) -> dict:
        return classification_metrics(gold, pred, spec.labels or sorted(set(gold)))

    def sampler(self, gold: list, pred: list, spec: TaskSpec):
        return macro_f1_sampler(gold, pred, spec.labels or sorted(set(gold)))

    def parse(self, text: str, spec: TaskSpec) -> tuple[str | None, bool]:
        label = parse_label(text or "", spec.labels)
        return label, label is None

    agreement_name = "label agreement"

    def agreement(self, reference: list, pred: list, spec: TaskSpec):
        """The share of examples given the same label (an invalid answer agrees with none)."""
        return mean_sampler([float(p is not None and p == r) for p, r in zip(pred, reference)])
