"""Judging every chat row of `eval` or `compare` (`--judge SPEC`), and the judge's own checks.

    inputs      the first --judge-max-examples test inputs, the same for every row
    baseline    the reference answers (default), another row's (--judge-against NAME), or the
                incumbent's recorded answers (--judge-against incumbent)
    verdicts    evaluation/judge.py: both orders per pair, A / B / tie (or a 1-10 grade)
    checks      order agreement, the discrimination probe, agreement with gold on labels
    cost        the judge's calls and tokens, priced at the price table's entry for an endpoint
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.config import EndpointOptions, JudgeOptions
from tunesmith.data.examples import Example
from tunesmith.data.taskfile import TaskSpec
from tunesmith.data.tasks import task_kind
from tunesmith.endpoints.spec import is_endpoint
from tunesmith.errors import UsageError
from tunesmith.evaluation.backends import open_backend
from tunesmith.evaluation.judge import (
    Judge,
    JudgeChecks,
    check,
    gold_agreement,
    nan_to_none,
    outcome,
    pair_message,
    probe_outcomes,
    summarize,
    summarize_grades,
)
from tunesmith.evaluation.runner import EvalResult
from tunesmith.pricing import PriceTable

log = logging.getLogger(__name__)

SHOWN_PAIRS = 5
"""Pairs the report shows with their verdicts in both orders."""


def check_judge_options(opts: JudgeOptions, task: str) -> None:
    """Before any work: --judge is for open-ended answers.

    Raises:
        UsageError: a judge option without --judge, or --judge on a labelled or entity task.
    """
    if not opts.judge:
        if opts.judge_against or opts.criteria:
            raise UsageError("--judge-against and --criteria need --judge SPEC.")
        return
    if not task_kind(task).open_ended:
        raise UsageError(f"--judge is for open-ended (chat) answers; this is a {task} task, "
                         "whose labels or entities are scored exactly: no judge needed.")


@dataclass
class JudgeReport:
    judge: str
    mode: str
    against: str
    n: int
    rows: dict[str, dict]
    """Per approach: its figures (`Judged.to_dict` / `Graded.to_dict`)."""
    checks: JudgeChecks
    calls: int
    prompt_tokens: int
    completion_tokens: float
    invalid: int
    cost_usd: float | None
    """None when the judge ran here (its time is in the wall time) or has no price."""
    cost_basis: str
    system_prompt: str
    examples: list[dict]
    scores: dict[str, list[float]] = field(default_factory=dict, repr=False)
    """Per approach, per input: what the recommendation resamples (when trusted)."""
    seconds: float = 0.0
    from_cache: int = 0
    """Judge calls answered from the on-disk cache (an endpoint judge; a rerun asks nothing)."""

    @property
    def metric(self) -> str:
        if self.mode == "score":
            return f"judged score (1-10, by {self.judge})"
        return f"judged win rate against {self.against} (by {self.judge})"

    def to_dict(self) -> dict:
        return {"judge": self.judge, "mode": self.mode, "against": self.against, "n": self.n,
                "rows": self.rows, "checks": self.checks.to_dict(), "calls": self.calls,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "invalid": self.invalid,
                "cost_usd": self.cost_usd, "cost_basis": self.cost_basis,
                "system_prompt": self.system_prompt, "examples": self.examples,
                "metric": self.metric, "trusted": self.checks.trusted,
                "seconds": self.seconds, "from_cache": self.from_cache}


def context_of(example: Example) -> str:
    """The conversation an answer was for, as the judge reads it (the system prompt is given
    to the judge as the task)."""
    last = max((i for i, m in enumerate(example.messages) if m.role == "assistant"),
               default=len(example.messages))
    return "\n".join(f"{m.role.capitalize()}: {m.content}" for m in example.messages[:last]
                     if m.role != "system")


def judge_results(opts: JudgeOptions, results: list[EvalResult], examples: list[Example],
                  spec: TaskSpec, *, endpoint: EndpointOptions | None = None,
                  prices: PriceTable | None = None, seed: int = 0) -> JudgeReport:
    """Judge every row of `results` (all evaluated on `examples`, in order) against the
    baseline, then the judge itself.

    Raises:
        UsageError: --judge-against names no row; a criteria file that cannot be read.
        EndpointError: the judge endpoint refused or stopped answering.
    """
    started = time.perf_counter()
    n = min(len(examples), opts.judge_max_examples)
    inputs = examples[:n]
    contexts = [context_of(e) for e in inputs]
    references = [e.target for e in inputs]
    against, baseline_row = "the reference answers", None
    if opts.judge_against:
        wanted = opts.judge_against
        baseline_row = next((r for r in results if r.name == wanted or
                             (wanted == "incumbent" and r.kind == "incumbent")), None)
        if baseline_row is None:
            raise UsageError(f"--judge-against {wanted}: no such row; the rows are "
                             f"{', '.join(r.name for r in results)}.")
        against = baseline_row.name
    baseline = ([str(p or "") for p in baseline_row.predictions[:n]] if baseline_row
                else references)
    criteria = None
    if opts.criteria:
        try:
            criteria = Path(opts.criteria).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"--criteria {opts.criteria}: cannot read it ({e}).") from e
    endpoint = endpoint or EndpointOptions()
    backend = open_backend(opts.judge, base_url=endpoint.base_url,
                           api_key_env=endpoint.api_key_env, concurrency=endpoint.concurrency,
                           use_cache=endpoint.use_cache, max_retries=endpoint.max_retries,
                           seed=seed)
    judge = Judge(backend, opts.judge_mode, spec.system, criteria, opts.judge)
    rows: dict[str, dict] = {}
    scores: dict[str, list[float]] = {}
    judged = []
    answers = {}
    for r in results:
        answers[r.name] = [str(p or "") for p in r.predictions[:n]]
        if r is baseline_row:
            continue
        log.info("judging %s on %d inputs (%s)", r.name, n, opts.judge_mode)
        if opts.judge_mode == "pairwise":
            j = summarize(r.name, judge.pairs(contexts, answers[r.name], baseline),
                          answers[r.name], baseline, seed)
            judged.append(j)
        else:
            j = summarize_grades(r.name, judge.grades(contexts, answers[r.name]), seed)
        rows[r.name] = {k: nan_to_none(v) for k, v in j.to_dict().items()}
        scores[r.name] = j.scores
    if baseline_row is not None:  # the baseline against itself: every pair a tie
        scores[baseline_row.name] = [0.5] * n if opts.judge_mode == "pairwise" else \
            summarize_grades(baseline_row.name, judge.grades(contexts, baseline), seed).scores
    elif opts.judge_mode == "score":
        ref = summarize_grades("reference", judge.grades(contexts, references), seed)
        rows["reference answers"] = ref.to_dict()
    kinds, won = probe_outcomes(judge, contexts, references, seed)
    gold = gold_agreement(judged, answers, baseline, references) if judged else (None, 0)
    checks = check(judged, kinds, won, opts.judge_min_probe, gold, opts.judge_mode)
    cost, basis = _judge_cost(opts.judge, judge, prices)
    examples_shown = _shown(judged, contexts, answers, baseline) if judged else []
    client = getattr(backend, "client", None)
    cached = client.cache.hits if client is not None and client.cache is not None else 0
    del backend
    return JudgeReport(opts.judge, opts.judge_mode, against, n, rows, checks, judge.calls.calls,
                       judge.calls.prompt_tokens, judge.calls.completion_tokens,
                       judge.calls.invalid, cost, basis, judge.system, examples_shown, scores,
                       time.perf_counter() - started, cached)


def _judge_cost(spec: str, judge: Judge, prices: PriceTable | None) -> tuple[float | None, str]:
    calls = judge.calls
    tokens = f"{calls.calls:,} calls, {calls.prompt_tokens:,} prompt + " \
             f"{calls.completion_tokens:,.0f} answer tokens"
    if not is_endpoint(spec):
        return None, f"{tokens}, run here (its time is in the wall time)"
    price = prices.chat_price(spec.split(":", 1)[1]) if prices is not None else None
    if price is None:
        return None, f"{tokens}; price unknown (name the model in a --prices table)"
    usd = (calls.prompt_tokens * price.input + calls.completion_tokens * price.output) / 1e6
    return usd, f"{tokens} at ${price.input}/${price.output} per 1M ({price.model})"


def _shown(judged, contexts: list[str], answers: dict[str, list[str]],
           baseline: list[str]) -> list[dict]:
    """The first pairs of the first judged row, with the verdicts in both orders."""
    j = judged[0]
    out = []
    for i, (a, b) in enumerate(j.verdicts[:SHOWN_PAIRS]):
        result, agreed = outcome(a, b)
        out.append({"approach": j.name, "input": contexts[i], "answer": answers[j.name][i],
                    "baseline": baseline[i], "verdict_answer_first": a,
                    "verdict_answer_second": b, "outcome": result, "order_kept": agreed,
                    "judge_message": pair_message(contexts[i], answers[j.name][i],
                                                  baseline[i]) if i == 0 else None})
    return out
