"""Chat / instructions: the reference answer's loss by teacher forcing (where the backend can
score given answers), and generated answers' exact match and token F1 (SQuAD-normalised)."""

from __future__ import annotations

import math

import numpy as np

from tunesmith.data.examples import Example
from tunesmith.data.taskfile import TaskSpec
from tunesmith.data.tasks import Chat
from tunesmith.evaluation.metrics import exact_match, mean_sampler, token_f1
from tunesmith.evaluation.tasks.base import EvalTask, Mode, Predictions


class ChatTask(Chat, EvalTask):

    def gold(self, example: Example) -> str:
        return example.target

    def predict(self, backend, examples: list[Example], conversations: list[list[dict]],
                spec: TaskSpec, *, mode: Mode, max_new_tokens: int | None,
                offsets: np.ndarray | None) -> Predictions:
        loss = backend.reference_loss(conversations, [e.target for e in examples])
        outs = backend.generate(conversations, max_new_tokens or 256)
        extra = {} if loss is None else {"loss": loss, "perplexity": math.exp(min(loss, 50))}
        missing = "no loss/perplexity: the endpoint does not score given answers"
        notes = [] if loss is not None else [missing]
        return Predictions([o.text for o in outs], sum(o.finish_reason == "length" for o in outs),
                           [o.prompt_tokens for o in outs], [o.completion_tokens for o in outs],
                           metrics=extra, notes=notes)

    def metrics(self, gold: list, pred: list, spec: TaskSpec) -> dict:
        n = max(len(gold), 1)
        return {"exact_match": sum(map(exact_match, pred, gold)) / n,
                "token_f1": sum(map(token_f1, pred, gold)) / n}

    def sampler(self, gold: list, pred: list, spec: TaskSpec):
        return mean_sampler([token_f1(p, g) for p, g in zip(pred, gold)])

    def parse(self, text: str, spec: TaskSpec) -> tuple[str, bool]:
        return text or "", False

    agreement_name = "token F1 against it"

    def agreement(self, reference: list, pred: list, spec: TaskSpec):
        """Token F1 against the reference's answers (until a judge decides: the judge issue)."""
        return mean_sampler([token_f1(p, r) for p, r in zip(pred, reference)])
