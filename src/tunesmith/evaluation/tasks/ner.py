"""Named entities: the model writes a JSON list of {"text", "type"}; entity-level precision,
recall and F1 on exact (text, type) matches. Unparseable output predicts nothing and counts as
invalid."""

from __future__ import annotations

import numpy as np

from tunesmith.data.answers import parse_entities as parse_gold_entities
from tunesmith.data.examples import Example
from tunesmith.data.taskfile import TaskSpec
from tunesmith.data.tasks import Ner
from tunesmith.evaluation.metrics import entity_f1_sampler, entity_metrics
from tunesmith.evaluation.parsing import parse_entities
from tunesmith.evaluation.tasks.base import EvalTask, Mode, Predictions


class NerTask(Ner, EvalTask):

    def gold(self, example: Example) -> list[tuple[str, str]]:
        return [(x["text"], x["type"]) for x in parse_gold_entities(example.target) or []]

    def predict(self, backend, examples: list[Example], conversations: list[list[dict]],
                spec: TaskSpec, *, mode: Mode, max_new_tokens: int | None,
                offsets: np.ndarray | None) -> Predictions:
        outs = backend.generate(conversations, max_new_tokens or 128)
        parsed = [parse_entities(o.text) for o in outs]
        return Predictions([p or [] for p in parsed], sum(p is None for p in parsed),
                           [o.prompt_tokens for o in outs], [o.completion_tokens for o in outs])

    def metrics(self, gold: list, pred: list, spec: TaskSpec) -> dict:
        return entity_metrics(gold, pred)

    def sampler(self, gold: list, pred: list, spec: TaskSpec):
        return entity_f1_sampler(gold, pred)

    def parse(self, text: str, spec: TaskSpec) -> tuple[list, bool]:
        entities = parse_entities(text or "")
        return entities or [], entities is None

    agreement_name = "entity F1 against it"

    def agreement(self, reference: list, pred: list, spec: TaskSpec):
        """Entity F1 with the reference's entities as the gold ones."""
        return entity_f1_sampler(reference, pred)
