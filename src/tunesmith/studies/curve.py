"""`run_curve`: one fine-tune per training-set size, each evaluated on the same test split, the
curve fitted, and curve.json / curve.png written.

    for n in sizes (smallest first, each a superset of the last):
        train on the first n examples of the nested order (the same hyper-parameter rule)
        evaluate on the test split, with a 95% bootstrap interval
    fit, invert for --target, find where fine-tuning passes the best prompt, backtest
"""

from __future__ import annotations

import gc
import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from tunesmith.atomic import atomic_open
from tunesmith.config import (
    EndpointOptions,
    JudgeOptions,
    MethodName,
    Shots,
    TrainConfig,
    parse_method,
    parse_shots,
    shots_label,
)
from tunesmith.data.examples import Example
from tunesmith.data.splits import TaskData, load_task_data, read_valid
from tunesmith.data.subsets import MIN_SIZE, auto_sizes, nested_order
from tunesmith.data.taskfile import write_task
from tunesmith.data.tasks import task_kind
from tunesmith.errors import UsageError
from tunesmith.evaluation.backends import open_backend
from tunesmith.evaluation.runner import EvalResult, evaluate
from tunesmith.evaluation.throughput import Throughput, measure
from tunesmith.hparams import auto_epochs
from tunesmith.modeling import DEFAULT_MODEL, load_tokenizer
from tunesmith.outputs import check_not_input, claim_dir
from tunesmith.prompting.prompter import PromptConfig
from tunesmith.report.plots import plot_curve
from tunesmith.report.recommend import sampler
from tunesmith.studies.curve_fit import HORIZON, Fit, backtest, fit_curve, needed_interval
from tunesmith.studies.judging import JudgeReport, check_judge_options, judge_results
from tunesmith.studies.prompt_search import search_prompt
from tunesmith.training import train

log = logging.getLogger(__name__)

CURVE_FILES = ("curve.json", "curve.png")
TRAIN_COST_FACTOR = 3.0
"""A training token costs about three forward-pass tokens (forward plus backward), for the
estimate printed before anything is trained; later sizes use the measured rate."""


def parse_sizes(text: str) -> list[int] | None:
    """`--sizes`: `auto` (None: halvings of the training split down to 50) or `50,100,200`.

    Raises:
        UsageError: anything else.
    """
    if text == "auto":
        return None
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError("--sizes takes auto or a list like 50,100,200,400") from None
    if not sizes or any(s <= 0 for s in sizes):
        raise UsageError("--sizes takes positive counts, like 50,100,200,400")
    return sizes


@dataclass(kw_only=True)
class CurveConfig:
    """`tunesmith curve`: every flag is a field (its docstring is the help)."""

    data: str = field(default="", metadata={"metavar": "DIR", "required": True})
    """A `data prepare` folder."""
    sizes: list[int] | None = field(default=None, metadata={"parse": parse_sizes,
                                                             "metavar": "SIZES"})
    """Training-set sizes, or auto: halvings of the training split down to 50 (default auto)."""
    target: float | None = field(default=None, metadata={"metavar": "X", "low": 0, "high": 1, "high_open": True})
    """A metric value (0-1) to estimate the examples needed for."""
    model: str = DEFAULT_MODEL
    """Model to fine-tune."""
    method: MethodName = "lora"
    """Fine-tuning approach (the names of `train --method`; not DPO, which needs preference
    rows)."""
    shots: Shots = field(default_factory=lambda: [0, 5],
                         metadata={"parse": parse_shots, "metavar": "K[,K...][,auto]"})
    """Prompting bands of --model on the test split: k-shot rows, and auto for the prompt
    chosen on the validation split."""
    max_test: int | None = field(default=None, metadata={"metavar": "N", "low": 1})
    """Evaluate on the first N test examples."""
    max_train: int | None = None
    """Use only the first N examples of the training split (compare --max-train)."""
    budget_minutes: float | None = field(default=None, metadata={"metavar": "MIN", "low": 0, "low_open": True})
    """Stop before a size that would pass this wall-clock budget."""
    out: str = field(default="curve", metadata={"metavar": "DIR"})
    """Output folder: new, empty, or one curve wrote."""
    seed: int = field(default=0, metadata={"low": 0, "high": 2**32 - 1})
    """Subset, training and bootstrap seed."""
    mode: Literal["score", "generate"] = "score"
    """Classification: label log-likelihood or generate-and-parse."""
    quiet: bool = False
    """No progress lines."""
    judging: JudgeOptions = field(default_factory=JudgeOptions)
    """Chat tasks: a judge's win rate as the curve's metric (`--judge`, ...), when the judge
    passes its checks."""
    endpoint: EndpointOptions = field(default_factory=EndpointOptions)
    """How the judge's endpoint is reached (`--base-url`, `--api-key-env`, ...)."""


@dataclass
class CurvePoint:
    n: int
    metric: float
    low: float
    high: float
    run: str
    seconds: float
    epochs: int

    def to_dict(self) -> dict:
        return {"n": self.n, "metric": round(self.metric, 4), "low": round(self.low, 4),
                "high": round(self.high, 4), "run": self.run, "train_seconds": round(self.seconds, 1),
                "epochs": self.epochs}


def interval(result: EvalResult, labels: list[str], resamples: int = 1000,
             seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of a result's task metric (examples resampled)."""
    metric = sampler(result, labels)
    rng = np.random.default_rng(seed)
    values = [metric(rng.integers(0, result.n, result.n)) for _ in range(resamples)]
    low, high = np.percentile(values, [2.5, 97.5])
    # Re-centred on the measured value: macro-F1 on resamples that miss rare labels is biased
    # low (Banking77, 195 examples: the plain percentile interval lay wholly below the value).
    shift = result.score - float(np.median(values))
    return float(low + shift), float(high + shift)


def _sizes(requested: list[int] | None, n_train: int) -> list[int]:
    if requested is None:
        return auto_sizes(n_train)
    sizes = sorted(set(requested))
    too_big = [s for s in sizes if s > n_train]
    if too_big:
        raise UsageError(f"--sizes {','.join(map(str, too_big))}: the training split has only "
                         f"{n_train:,} examples.")
    if sizes[0] < MIN_SIZE or len(sizes) < 2:
        raise UsageError(f"--sizes needs at least two sizes of {MIN_SIZE} or more examples.")
    return sizes


def plan_minutes(sizes: list[int], tokens_per_example: float, train_tokens_per_s: float,
                 eval_seconds: float) -> list[float]:
    """Estimated minutes per size: auto epochs x n x mean tokens at the training rate, plus one
    evaluation of the test split."""
    return [(auto_epochs(n) * n * tokens_per_example / train_tokens_per_s + eval_seconds) / 60
            for n in sizes]


def run_curve(cfg: CurveConfig, *, prompts: list[EvalResult] | None = None,
              rates: Throughput | None = None,
              say: Callable[[str], None] = lambda message: None) -> dict:
    """Train and evaluate one fine-tune per size and write CURVE_FILES into `cfg.out`.

    Args:
        prompts: prompting results on the same test split (compare passes its own); None
            evaluates `cfg.shots` of the base model here.
        rates: the base model's measured rates (compare has them); None measures them here.
        say: where the plan and progress go (the command line prints them).

    Returns:
        The curve.json document.

    Raises:
        UsageError: bad sizes, a folder that is not ours, no test split.
    """
    td = load_task_data(cfg.data)
    parse_method(cfg.method).check_prepared(td.spec.task)
    check_judge_options(cfg.judging, td.spec.task)
    if not td.test:
        raise UsageError(f"--data {cfg.data}: no test split (test.jsonl) to measure the curve "
                         "on.")
    if cfg.max_train:
        td.train = td.train[: cfg.max_train]
    sizes = _sizes(cfg.sizes, len(td.train))
    out = claim_dir(cfg.out, owned=CURVE_FILES + ("data/task.json",))
    data = Path(cfg.data)
    check_not_input([out / "data", out / "runs", *(out / n for n in CURVE_FILES)],
                    [data / n for n in ("train.jsonl", "validation.jsonl", "test.jsonl",
                                        "task.json")])
    write_task(out / "data", td.spec)
    test = td.test[: cfg.max_test] if cfg.max_test else td.test
    order = nested_order(td.train, td.spec.task, cfg.seed)
    labels = td.spec.labels
    metric_name = task_kind(td.spec.task).metric

    # ---- prompting bands and the rates the plan is estimated from ---------------------------
    tokenizer = load_tokenizer(cfg.model)
    if prompts is None or rates is None:  # the base model is loaded only when needed
        prompts, rates = prompting_bands(cfg, td, test, prompts, rates, say)
    texts = [json.dumps(td.train[i].to_chat(), ensure_ascii=False) for i in order]
    tokens = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts[:200]]
    per_example = float(np.mean(tokens)) if tokens else 1.0
    train_rate = rates.prefill_tokens_per_s / TRAIN_COST_FACTOR
    eval_seconds = len(test) * rates.seconds(per_example, 4, scored=True)
    estimate = plan_minutes(sizes, per_example, train_rate, eval_seconds)
    say("plan: " + ", ".join(f"{n:,} examples ~{m:.1f} min" for n, m in zip(sizes, estimate))
        + f"; about {sum(estimate):.0f} min in all"
        + (f" (budget {cfg.budget_minutes:g} min)" if cfg.budget_minutes else ""))

    # ---- one fine-tune per size -------------------------------------------------------------
    points, judgements, skipped = measure_sizes(cfg, td, test, order, sizes, estimate,
                                                per_example, eval_seconds, out, say)

    bands, judged = None, None
    if cfg.judging.judge:
        points, bands, metric_name, judged = judged_curve(cfg, td, test, prompts, points,
                                                          judgements, metric_name)
    doc = summarize(points, prompts, labels, metric_name, cfg, skipped, len(td.train), out,
                    bands)
    doc["judge"] = judged
    plot_curve(doc, out / "curve.png", fitted_line(doc))
    with atomic_open(out / "curve.json") as f:
        json.dump(doc, f, indent=2)
    return doc


def measure_sizes(cfg: CurveConfig, td: TaskData, test: list[Example], order: list[int],
                  sizes: list[int], estimate: list[float], per_example: float,
                  eval_seconds: float, out: Path, say: Callable[[str], None],
                  ) -> tuple[list[CurvePoint], list[JudgeReport], list[int]]:
    """Fine-tune and measure each size in turn (judged too with --judge), stopping before a
    size that would pass the budget: the points, the judge's reports, the sizes skipped."""
    metric_name = task_kind(td.spec.task).metric
    points: list[CurvePoint] = []
    judgements: list[JudgeReport] = []
    skipped: list[int] = []
    started = time.perf_counter()
    seconds_per_token: float | None = None
    for n, guess in zip(sizes, estimate):
        if seconds_per_token is not None:
            guess = (auto_epochs(n) * n * per_example * seconds_per_token + eval_seconds) / 60
        used = (time.perf_counter() - started) / 60
        if cfg.budget_minutes is not None and used + guess > cfg.budget_minutes:
            skipped = [s for s in sizes if s >= n]
            say(f"stopping before {n:,} examples: ~{guess:.1f} more min would pass the "
                f"{cfg.budget_minutes:g}-min budget ({used:.1f} min used)")
            break
        say(f"fine-tuning on {n:,} examples ({cfg.method})")
        point, trained_tokens, result = fine_tune_size(cfg, td, test,
                                                       [td.train[i] for i in order[:n]], out)
        if cfg.judging.judge:
            judgements.append(judge_results(cfg.judging, [result], test, td.spec,
                                            endpoint=cfg.endpoint, seed=cfg.seed))
        seconds_per_token = point.seconds / max(trained_tokens, 1)
        points.append(point)
        say(f"  {n:,} examples: {metric_name} {point.metric:.3f} [{point.low:.3f}, "
            f"{point.high:.3f}] ({point.seconds / 60:.1f} min training)")

    return points, judgements, skipped


def fine_tune_size(cfg: CurveConfig, td: TaskData, test: list[Example], subset: list[Example],
                   out: Path) -> tuple[CurvePoint, int]:
    """Fine-tune on `subset` (in OUT/runs/nN) and measure it on the test split: the point and
    the run's trained tokens."""
    n = len(subset)
    train_file = out / "data" / f"train-{n}.jsonl"
    with atomic_open(train_file) as f:
        f.writelines(json.dumps(e.to_chat(), ensure_ascii=False) + "\n" for e in subset)
    run_dir = out / "runs" / f"n{n}"
    if run_dir.exists():
        shutil.rmtree(run_dir)  # curve owns its runs: a rerun trains afresh
    t0 = time.perf_counter()
    trained = train(TrainConfig(
        # No validation passes: the curve is read on the test split, and a fixed validation
        # cost per run would make the small sizes as dear as the large ones.
        train_file=str(train_file), val_file=None, out=str(run_dir), model=cfg.model,
        method=cfg.method, seed=cfg.seed, quiet=True))
    seconds = time.perf_counter() - t0
    epochs, trained_tokens = trained.config.epochs, trained.trained_tokens
    del trained
    gc.collect()
    backend = open_backend(str(run_dir))
    result = evaluate(backend, test, td.spec, kind="fine-tune", name=f"n={n}", mode=cfg.mode)
    del backend
    gc.collect()
    low, high = interval(result, td.spec.labels, seed=cfg.seed)
    return (CurvePoint(n, result.score, low, high, str(run_dir), seconds, epochs),
            trained_tokens, result)


def judged_curve(cfg: CurveConfig, td: TaskData, test: list[Example], prompts: list[EvalResult],
                 points: list[CurvePoint], judgements: list[JudgeReport], metric_name: str):
    """The judge's win rates as the curve (points and prompting bands) when it passed its
    checks at every size; else the task metric's, and why. Returns (points, bands or None,
    metric name, the judge's summary for curve.json)."""
    bands_judged = judge_results(cfg.judging, prompts, test, td.spec, endpoint=cfg.endpoint,
                                 seed=cfg.seed) if prompts else None
    reports = judgements + ([bands_judged] if bands_judged else [])
    why = [w for r in reports for w in r.checks.why]
    trusted = bool(reports) and all(r.checks.trusted for r in reports)
    summary = {"judge": cfg.judging.judge, "mode": cfg.judging.judge_mode,
               "trusted": trusted, "why": why[:3],
               "checks": reports[-1].checks.to_dict() if reports else None}
    if not trusted:
        summary["note"] = (f"the judge is not trusted on this data ({'; '.join(why[:2])}): "
                           f"the curve is drawn on {metric_name}")
        return points, None, metric_name, summary
    key = "win_rate" if cfg.judging.judge_mode == "pairwise" else "mean"
    judged_points = []
    for point, report in zip(points, judgements):
        row = next(iter(report.rows.values()))
        judged_points.append(replace(point, metric=row[key], low=row["low"], high=row["high"]))
    bands = {name: (row[key], row["low"], row["high"])
             for name, row in (bands_judged.rows.items() if bands_judged else [])}
    return judged_points, bands, judgements[0].metric.replace(" (by", " of the fine-tune (by"), \
        summary


def prompting_bands(cfg: CurveConfig, td: TaskData, test: list[Example],
                    prompts: list[EvalResult] | None, rates: Throughput | None,
                    say: Callable[[str], None]) -> tuple[list[EvalResult], Throughput]:
    """The prompting rows drawn as bands (`cfg.shots` of the base model on the test split,
    unless given) and the base model's measured rates (unless given).

    Raises:
        UsageError: --shots auto without a validation split.
    """
    val_path = td.folder / "validation.jsonl"
    validation = read_valid(val_path).examples if "auto" in cfg.shots and val_path.is_file() \
        else []
    if prompts is None and "auto" in cfg.shots and not validation:
        raise UsageError(f"--shots auto chooses the prompt on {val_path}, which is missing or "
                         "empty; give --shots numbers only.")
    backend = open_backend(cfg.model, seed=cfg.seed)
    if prompts is None:
        prompts = []
        for shots in parse_shots(",".join(map(str, cfg.shots))):
            name = shots_label(shots)
            if shots == "auto":
                say("prompting band: choosing the best prompt on the validation split")
                prompt = search_prompt(backend, td.spec, td.train, validation, mode=cfg.mode,
                                       seed=cfg.seed).best
            else:
                prompt = PromptConfig(int(shots), seed=cfg.seed)
            say(f"prompting band: {name} on {len(test):,} test examples")
            prompts.append(evaluate(backend, test, td.spec, prompt=prompt, train=td.train,
                                    name=name, kind="prompt", mode=cfg.mode))
    rates = rates or measure(backend.model)
    del backend
    gc.collect()
    return prompts, rates


def summarize(points: list[CurvePoint], prompts: list[EvalResult], labels: list[str],
              metric_name: str, cfg: CurveConfig, skipped: list[int], n_train: int,
              out: Path, judged_bands: dict[str, tuple[float, float, float]] | None = None
              ) -> dict:
    bands = []
    for p in prompts:
        if judged_bands is not None and p.name in judged_bands:
            score, low, high = judged_bands[p.name]
        else:
            score, (low, high) = p.score, interval(p, labels, seed=cfg.seed)
        bands.append({"name": p.name, "metric": round(score, 4), "low": round(low, 4),
                      "high": round(high, 4)})
    doc: dict = {"data": cfg.data, "model": cfg.model, "method": cfg.method,
                 "metric": metric_name, "training_examples": n_train,
                 "points": [p.to_dict() for p in points], "prompting": bands,
                 "skipped_sizes": skipped, "fit": None, "fits": [], "target": cfg.target,
                 "examples_needed": None, "beats_best_prompt_from": None, "backtest": None,
                 "out": str(out)}
    if len(points) < 2:
        doc["note"] = "fewer than two sizes measured: no curve fitted"
        return doc
    n = np.array([p.n for p in points], dtype=float)
    m = np.array([p.metric for p in points])
    low, high = np.array([p.low for p in points]), np.array([p.high for p in points])
    fit, fits = fit_curve(n, m)
    doc["fit"] = fit.to_dict() | {"chosen_by": "lower AICc" if len(fits) > 1 and
                                  fits[1].aicc is not None else "log-linear (too few points "
                                  "to charge the power law's third parameter)"}
    doc["fits"] = [f.to_dict() for f in fits]
    horizon = HORIZON * float(n.max())
    if cfg.target is not None:
        needed = fit.needed(cfg.target, horizon)
        lo, hi = needed_interval(fit, n, m, low, high, cfg.target, horizon, seed=cfg.seed)
        doc["examples_needed"] = {
            "target": cfg.target, "n": None if needed is None else math.ceil(needed),
            "low": None if lo is None else math.ceil(lo), "high": None if hi is None else
            math.ceil(hi), "horizon": int(horizon),
            "text": (f"examples needed for {metric_name} {cfg.target:g}: about "
                     f"{math.ceil(needed):,} (95% interval {_n(lo)} to {_n(hi)})"
                     if needed is not None else
                     f"{metric_name} {cfg.target:g} is not reached within 10x the data you have "
                     f"({int(horizon):,} examples)")}
    if bands:
        best = max(bands, key=lambda b: b["metric"])
        beats = fit.needed(best["metric"], horizon)
        measured = next((int(p.n) for p in points if p.metric > best["metric"]), None)
        smallest = int(n.min())
        if beats is not None and beats < smallest and measured == smallest:
            words = (f"fine-tuning beats the best prompt ({best['name']}, {best['metric']:.3f}) "
                     f"at every measured size, from the smallest ({smallest:,} examples)")
        elif beats is not None:
            words = (f"fine-tuning beats the best prompt ({best['name']}, {best['metric']:.3f}) "
                     f"from about {max(smallest, math.ceil(beats)):,} examples")
        doc["beats_best_prompt_from"] = {
            "prompt": best["name"], "prompt_metric": best["metric"],
            "n": None if beats is None else max(smallest, math.ceil(beats)),
            "first_measured_size_above": measured,
            "text": (words if beats is not None
                     else f"fine-tuning does not reach the best prompt ({best['name']}, "
                     f"{best['metric']:.3f}) within {int(horizon):,} examples on this curve")}
    doc["backtest"] = backtest(n, m, fit.form)
    if doc["backtest"] is None:
        doc["backtest_note"] = "a backtest needs three sizes or more"
    return doc


def _n(value: float | None) -> str:
    return "beyond 10x the data" if value is None else f"{math.ceil(value):,}"


def fitted_line(doc: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """The fitted curve drawn in curve.png: from the smallest size to HORIZON x the largest."""
    if not doc["fit"] or not doc["points"]:
        return None
    n = np.array([p["n"] for p in doc["points"]], dtype=float)
    fit = Fit(doc["fit"]["form"], doc["fit"]["params"], 0.0, None)
    xs = np.logspace(np.log10(n.min()), np.log10(n.max() * HORIZON), 100)
    return xs, np.clip(fit.predict(xs), 0, 1)
