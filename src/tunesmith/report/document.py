"""`Report`: everything `compare` measured, as one object that `render.py` writes out and
`report.json` serialises (kept apart from both, so neither imports the other)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.cost import ApproachCost
from tunesmith.evaluation.runner import EvalResult
from tunesmith.report.recommend import Recommendation


@dataclass
class Report:
    task: dict
    """task.json: task, labels, system."""
    data: str
    model: str
    """The model fine-tuned."""
    prompt_models: list[str]
    """The models prompted (the fine-tuned model's base by default; `openai:NAME` endpoints)."""
    n_test: int
    n_train: int
    results: list[EvalResult]
    """Every approach on the same test examples; the fine-tuned one last."""
    costs: dict[str, ApproachCost]
    """How each approach runs and what it costs: self-hosted here, or at its endpoint."""
    openai_costs: dict[str, ApproachCost]
    """The same requests at OpenAI's list prices (a reference)."""
    break_even: dict[str, dict[str, list[dict]]]
    """Prompting approach -> fine-tuned approach -> the monthly volumes where the cheaper of the
    two over the first year changes (`cost.crossings`; [] when one is cheaper throughout)."""
    recommendation: Recommendation
    training: dict[str, dict]
    """Fine-tuned approach -> how its training went (epochs, steps, tokens, seconds, losses)."""
    hardware: str
    prices_as_of: str
    out: Path
    throughput: dict = field(default_factory=dict)
    """Model spec -> its measured prefill/decode rates (`Throughput.to_dict()`)."""
    prompt_searches: dict = field(default_factory=dict)
    """Prompted model -> the validation search behind its `best prompt` row."""
    requests_per_month: int = 0
    audit: dict = field(default_factory=dict)
    """`data audit` of the training split, and of the test split against it (leaks)."""
    curve: dict | None = None
    """`compare --curve`: the curve.json document."""
    incumbent: dict | None = None
    """`compare --incumbent`: the model being replaced, each row's agreement with it, the
    non-inferiority tests, its days left and how to serve the winner."""
    distillation: list = field(default_factory=list)
    """`compare --teacher`: each row trained on the teacher's answers against the row of its
    method trained on the gold ones."""
    judge: dict | None = None
    """`compare --judge`: `JudgeReport.to_dict()` (figures, checks, cost, shown pairs)."""
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S"))

    @property
    def fine_tuned_rows(self) -> list[EvalResult]:
        return [r for r in self.results if r.kind == "fine-tune"]

    @property
    def fine_tuned(self) -> EvalResult:
        """The best fine-tuned approach."""
        return max(self.fine_tuned_rows, key=lambda r: r.score)

    @property
    def best_prompt(self) -> EvalResult:
        return max((r for r in self.results if r.kind == "prompt"), key=lambda r: r.score)

    def to_dict(self) -> dict:
        return {
            "task": self.task["task"], "labels": self.task["labels"], "system": self.task["system"],
            "data": self.data, "model": self.model, "prompt_models": self.prompt_models,
            "n_test": self.n_test, "n_train": self.n_train, "created": self.created,
            "hardware": self.hardware, "prices_as_of": self.prices_as_of,
            "throughput": self.throughput,
            "approaches": [{**r.to_dict(), "cost": self.costs[r.name].to_dict(),
                            "openai_cost": self.openai_costs[r.name].to_dict()}
                           for r in self.results],
            "crossings": self.break_even,
            "requests_per_month": self.requests_per_month,
            "prompt_searches": self.prompt_searches,
            "recommendation": self.recommendation.to_dict(),
            "training": self.training,
            "audit": self.audit,
            "curve": self.curve,
            "incumbent": self.incumbent,
            "distillation": self.distillation,
            "judge": self.judge,
        }
