"""`compare`: prompting (the fine-tuned model's base, or any endpoint model) against a fine-tune,
on the same test examples, priced, with a recommendation, written as report.json / report.md /
report.html.

    for each prompted model (--prompt-model; default: --model)
        zero-shot, k-shot, and `best prompt` (chosen on the validation split)
    fine-tune --model on the training split, evaluate it the same way
    price every row, apply the recommendation rule, write the report
"""

from __future__ import annotations

import gc
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.atomic import atomic_open
from tunesmith.config import TrainConfig
from tunesmith.cost import break_even, plot_costs
from tunesmith.data.splits import load_task_data, read_valid
from tunesmith.data.taskfile import write_task
from tunesmith.endpoints.spec import is_endpoint, resolve_endpoint
from tunesmith.errors import UsageError
from tunesmith.evaluation.backends import LocalBackend, open_backend
from tunesmith.evaluation.runner import EvalResult, evaluate
from tunesmith.evaluation.throughput import Throughput, measure
from tunesmith.hparams import auto_epochs
from tunesmith.modeling import DEFAULT_MODEL
from tunesmith.outputs import check_not_input, claim_dir
from tunesmith.pricing import load_prices
from tunesmith.prompting.prompter import PromptConfig
from tunesmith.prompting.search import search_prompt
from tunesmith.report.costs import price_approaches
from tunesmith.report.document import Report
from tunesmith.report.recommend import recommend
from tunesmith.training.tune import tune

log = logging.getLogger(__name__)

REPORT_FILES = ("report.json", "report.md", "report.html", "cost.png", "data/task.json")
"""Files compare writes at the top of REPORT_DIR; any of them marks a folder it made."""


@dataclass
class CompareConfig:
    data: str
    """A `data prepare` folder: train.jsonl, validation.jsonl, test.jsonl, task.json."""
    out: str = "report"
    model: str = DEFAULT_MODEL
    """The model fine-tuned."""
    prompt_models: list[str] = field(default_factory=list)
    """Models prompted (model specs or `openai:NAME`); empty: `model`."""
    shots: list[int | str] = field(default_factory=lambda: [0, 5, "auto"])
    """Prompting rows per prompted model: k-shot for each number; `auto` adds `best prompt`,
    chosen on the validation split."""
    methods: list[str] = field(default_factory=lambda: ["lora"])
    """Fine-tuning approaches, one row each: `lora`, `full` (the answer as text), `lora-head`,
    `full-head` (a classifier or token-classification head for the task)."""
    requests_per_month: int = 100_000
    prices: str | None = None
    max_train: int | None = None
    """Use only the first N training examples (the splits are already shuffled)."""
    max_test: int | None = None
    epochs: int | str = "auto"
    mode: str = "score"
    """Classification: `score` (label log-likelihood) or `generate`."""
    seed: int = 0
    quiet: bool = False
    base_url: str | None = None
    api_key_env: str | None = None
    concurrency: int = 8
    use_cache: bool = True
    search_examples: int = 200
    """Validation examples each prompt candidate is scored on (`auto`)."""
    tune: bool = False
    """Choose each fine-tune's learning rate and epochs on the validation split (`train
    --tune`); the time of every trial counts as training time."""
    tune_budget_minutes: float = 60.0
    """Per fine-tuning approach."""
    audit: bool = True
    """Audit the training split and the test split against it (TF-IDF probe; seconds)."""
    curve: bool = False
    """Also measure the learning curve of the first method (`tunesmith curve`) in REPORT_DIR/curve."""
    curve_sizes: list[int] | None = None
    target: float | None = None
    """`curve`: the metric value to estimate the examples needed for."""


def compare(cfg: CompareConfig) -> Report:
    """Run every approach and write the report folder.

    Raises:
        UsageError: the report folder is not ours, the data has no training split, an
            endpoint is misconfigured, `auto` without a validation split.
        EndpointError: an endpoint refused or stopped answering.
    """
    import torch

    from tunesmith.training import train

    out = claim_dir(cfg.out, owned=REPORT_FILES)
    data = Path(cfg.data)
    check_not_input([out / "data", out / "run", *(out / name for name in REPORT_FILES)],
                    [data / name for name in ("train.jsonl", "validation.jsonl", "test.jsonl",
                                              "task.json")] if data.is_dir() else [data])
    td = load_task_data(cfg.data)
    test = td.test[: cfg.max_test] if cfg.max_test else td.test
    train_examples = td.train[: cfg.max_train] if cfg.max_train else td.train
    if not train_examples:
        raise UsageError(f"--data {cfg.data}: no training examples (train.jsonl beside the test "
                         "split); compare needs a `tunesmith data prepare` folder.")
    for method in cfg.methods:  # a wrong method fails now, not after the prompting arms
        if method not in METHODS:
            raise UsageError(f"--method {method}: one of {', '.join(METHODS)}.")
        _head(method, td.spec.task)
    val_path = td.folder / "validation.jsonl"
    validation = read_valid(val_path).examples if val_path.is_file() and \
        val_path.stat().st_size else []
    if cfg.tune and not validation:
        raise UsageError(f"--tune chooses settings on {val_path}, which is missing or empty.")
    if "auto" in cfg.shots and not validation:
        raise UsageError(f"--shots auto chooses the prompt on {val_path}, which is missing or "
                         "empty; prepare the data with --val, or give --shots numbers only.")
    prices = load_prices(cfg.prices)
    hardware = prices.hardware(torch.cuda.is_available())  # fails now, not after training
    prompt_models = cfg.prompt_models or [cfg.model]
    endpoints = {spec: resolve_endpoint(spec, cfg.base_url, cfg.api_key_env).base_url
                 for spec in prompt_models if is_endpoint(spec)}  # misconfigured: fail now

    write_task(out / "data", td.spec)  # first: it marks REPORT_DIR as compare's own
    audit = audit_summary(td.folder) if cfg.audit else {}

    # ---- prompting -------------------------------------------------------------------------
    results: list[EvalResult] = []
    throughput: dict[str, Throughput] = {}
    searches: dict[str, dict] = {}
    for spec in prompt_models:
        backend = open_backend(spec, base_url=cfg.base_url, api_key_env=cfg.api_key_env,
                               concurrency=cfg.concurrency, use_cache=cfg.use_cache,
                               seed=cfg.seed)
        prefix = "" if prompt_models == [cfg.model] else f"{spec} · "
        for shots in _ordered(cfg.shots):
            if shots == "auto":
                search = search_prompt(backend, td.spec, train_examples, validation,
                                       mode=cfg.mode, seed=cfg.seed,
                                       max_examples=cfg.search_examples)
                searches[spec] = search.to_dict()
                prompt, name = search.best, f"{prefix}best prompt"
            else:
                prompt = PromptConfig(int(shots), seed=cfg.seed)
                name = prefix + (f"{shots}-shot" if shots else "zero-shot")
            log.info("evaluating %s on %d test examples", name, len(test))
            results.append(evaluate(backend, test, td.spec, prompt=prompt, train=train_examples,
                                    name=name, kind="prompt", mode=cfg.mode))
        if isinstance(backend, LocalBackend):
            throughput[spec] = measure(backend.model)
        del backend
        gc.collect()

    # ---- fine-tune -------------------------------------------------------------------------
    train_file = out / "data" / "train.jsonl"
    with atomic_open(train_file) as f:
        f.writelines(json.dumps(e.to_chat(), ensure_ascii=False) + "\n" for e in train_examples)
    trainings: dict[str, dict] = {}
    billing: dict[str, tuple[float, int]] = {}
    for i, method in enumerate(cfg.methods):
        name = f"fine-tuned ({method})"
        run_dir = out / ("run" if i == 0 else f"run-{method}")
        if run_dir.exists():  # compare owns its run folders: a rerun trains afresh (real times)
            log.info("replacing the earlier fine-tune in %s", run_dir)
            shutil.rmtree(run_dir)
        started = time.perf_counter()
        config = TrainConfig(
            train_file=str(train_file), val_file=str(val_path) if validation else None,
            out=str(run_dir), model=cfg.model, method=method.removesuffix("-head"),
            head=_head(method, td.spec.task), epochs=cfg.epochs, seed=cfg.seed,
            quiet=cfg.quiet, tune=cfg.tune, tune_budget_minutes=cfg.tune_budget_minutes)
        if cfg.tune:
            summary = tune(config).run_summary()
        else:
            trained = train(config)
            summary = {"seconds": time.perf_counter() - started, "epochs": trained.config.epochs,
                       "steps": trained.steps, "trained_tokens": trained.trained_tokens,
                       "tokens_per_s": trained.tokens_per_s,
                       "initial_valid_loss": trained.initial_valid_loss,
                       "final_valid_loss": trained.final_valid_loss}
            del trained
        gc.collect()
        backend = open_backend(str(run_dir))
        log.info("evaluating %s on %d test examples", name, len(test))
        results.append(evaluate(backend, test, td.spec, kind="fine-tune", name=name,
                                mode=cfg.mode))
        # A fine-tune has its base's architecture and size: the same rates (a head model
        # reads the same tokens and writes none).
        throughput[str(run_dir)] = throughput.get(cfg.model) or measure(backend.model)
        del backend
        gc.collect()
        billing[name] = (summary["seconds"], summary["trained_tokens"])
        trainings[name] = {"run": str(run_dir), "method": method, **summary,
                           "openai_auto_epochs": auto_epochs(len(train_examples))}

    curve = None
    if cfg.curve:
        from tunesmith.curve.run import CurveConfig, run_curve

        curve = run_curve(CurveConfig(
            data=cfg.data, out=str(out / "curve"), model=cfg.model, method=cfg.methods[0],
            sizes=cfg.curve_sizes, target=cfg.target, max_test=cfg.max_test,
            max_train=cfg.max_train, seed=cfg.seed, mode=cfg.mode, quiet=cfg.quiet),
            prompts=[r for r in results if r.kind == "prompt"], rates=throughput.get(cfg.model),
            say=lambda message: log.info("curve: %s", message))

    # ---- cost and recommendation -----------------------------------------------------------
    costs, openai_costs = price_approaches(results, prices, hardware, throughput,
                                           training=billing, endpoints=endpoints)
    rec = recommend(results, costs, td.spec.labels, cfg.requests_per_month, seed=cfg.seed)
    prompts = [r for r in results if r.kind == "prompt"]
    tuned = [r for r in results if r.kind == "fine-tune"]
    payback = {p.name: {f.name: break_even(costs[p.name], costs[f.name]) for f in tuned}
               for p in prompts}
    report = Report(
        td.spec.to_dict(), str(cfg.data), cfg.model, prompt_models, len(test),
        len(train_examples), results, costs, openai_costs, payback, rec, trainings,
        hardware.name, prices.as_of, out, {k: v.to_dict() for k, v in throughput.items()},
        searches, cfg.requests_per_month, audit, curve)
    best = report.best_prompt
    plot_costs(list(costs.values()) + [openai_costs[best.name],
                                       openai_costs[report.fine_tuned.name]],
               out / "cost.png", marker=cfg.requests_per_month)
    from tunesmith.report.render import write_report

    write_report(report)
    return report


METHODS = ("lora", "full", "lora-head", "full-head")
SHOWN = 5
"""Examples of each audit finding the report lists."""


def audit_summary(folder: Path) -> dict:
    """`data audit` of train.jsonl, and of test.jsonl against it: counts and the top findings."""
    from tunesmith.audit.report import audit_file

    summary = {}
    train = folder / "train.jsonl"
    for split, path in (("train", train), ("test", folder / "test.jsonl")):
        if not path.is_file() or not path.stat().st_size:
            continue
        report = audit_file(path, train_path=train if split == "test" else None)
        within = [d for d in report.near_duplicates if d.other_file == report.file]
        summary[split] = {
            "file": str(path), "examples": report.examples, "task": report.task,
            "label_errors": len(report.label_errors),
            "entity_conflicts": len(report.entity_conflicts),
            "near_duplicates": len(within), "leaks": len(report.leaks),
            "outliers": len(report.outliers), "seconds": round(sum(report.seconds.values()), 1),
            "top_label_errors": [e.to_dict() for e in report.label_errors[:SHOWN]],
            "top_entity_conflicts": [c.to_dict() for c in report.entity_conflicts[:SHOWN]],
            "top_leaks": [d.to_dict() for d in report.leaks[:SHOWN]],
            "top_near_duplicates": [d.to_dict() for d in within[:SHOWN]],
        }
    return summary


def _head(method: str, task: str) -> str:
    """`lora-head` / `full-head` -> the head the task takes (classifier or token)."""
    if not method.endswith("-head"):
        return "lm"
    if task == "chat":
        raise UsageError(f"--method {method}: a chat task has no head; use lora or full.")
    return "classifier" if task == "classification" else "token"


def _ordered(shots: list[int | str]) -> list[int | str]:
    """Numbers ascending, then `auto`, each once."""
    numbers = sorted({int(s) for s in shots if s != "auto"})
    return numbers + (["auto"] if "auto" in shots else [])
