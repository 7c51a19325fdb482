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
from tunesmith.modeling import DEFAULT_MODEL, load_for_inference
from tunesmith.outputs import check_not_input, claim_dir
from tunesmith.pricing import load_prices
from tunesmith.prompting.prompter import PromptConfig
from tunesmith.prompting.search import search_prompt
from tunesmith.report.costs import price_approaches
from tunesmith.report.document import Report
from tunesmith.report.recommend import recommend

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
    method: str = "lora"
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
    val_path = td.folder / "validation.jsonl"
    validation = read_valid(val_path).examples if val_path.is_file() and \
        val_path.stat().st_size else []
    if "auto" in cfg.shots and not validation:
        raise UsageError(f"--shots auto chooses the prompt on {val_path}, which is missing or "
                         "empty; prepare the data with --val, or give --shots numbers only.")
    prices = load_prices(cfg.prices)
    hardware = prices.hardware(torch.cuda.is_available())  # fails now, not after training
    prompt_models = cfg.prompt_models or [cfg.model]
    endpoints = {spec: resolve_endpoint(spec, cfg.base_url, cfg.api_key_env).base_url
                 for spec in prompt_models if is_endpoint(spec)}  # misconfigured: fail now

    write_task(out / "data", td.spec)  # first: it marks REPORT_DIR as compare's own

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
    run_dir = out / "run"
    if run_dir.exists():  # compare owns REPORT_DIR/run: a rerun trains afresh, so times are real
        log.info("replacing the earlier fine-tune in %s", run_dir)
        shutil.rmtree(run_dir)
    started = time.perf_counter()
    trained = train(TrainConfig(
        train_file=str(train_file), val_file=str(val_path) if validation else None,
        out=str(run_dir), model=cfg.model, method=cfg.method, epochs=cfg.epochs, seed=cfg.seed,
        quiet=cfg.quiet))
    train_seconds = time.perf_counter() - started
    del trained.model
    gc.collect()
    model, tokenizer = load_for_inference(str(run_dir))
    log.info("evaluating the fine-tuned model on %d test examples", len(test))
    fine = evaluate(LocalBackend(model, tokenizer, str(run_dir)), test, td.spec,
                    kind="fine-tune", name=f"fine-tuned ({cfg.method})", mode=cfg.mode)
    results.append(fine)
    # A merged LoRA or full fine-tune has its base's architecture and size: the same rates.
    throughput[str(run_dir)] = throughput.get(cfg.model) or measure(model)
    del model
    gc.collect()

    # ---- cost and recommendation -----------------------------------------------------------
    costs, openai_costs = price_approaches(results, prices, hardware, throughput,
                                           training_seconds=train_seconds,
                                           billed_tokens=trained.trained_tokens,
                                           endpoints=endpoints)
    rec = recommend(results, costs, td.spec.labels, cfg.requests_per_month, seed=cfg.seed)
    payback = {r.name: break_even(costs[r.name], costs[fine.name]) for r in results[:-1]}
    report = Report(
        td.spec.to_dict(), str(cfg.data), cfg.model, prompt_models, len(test),
        len(train_examples), results, costs, openai_costs, payback, rec,
        {"run": str(run_dir), "seconds": train_seconds, "epochs": trained.config.epochs,
         "steps": trained.steps, "trained_tokens": trained.trained_tokens,
         "tokens_per_s": trained.tokens_per_s, "initial_valid_loss": trained.initial_valid_loss,
         "final_valid_loss": trained.final_valid_loss, "openai_auto_epochs":
         auto_epochs(len(train_examples))},
        hardware.name, prices.as_of, out, {k: v.to_dict() for k, v in throughput.items()},
        searches, cfg.requests_per_month)
    best = report.best_prompt
    plot_costs(list(costs.values()) + [openai_costs[best.name], openai_costs[fine.name]],
               out / "cost.png", marker=cfg.requests_per_month)
    from tunesmith.report.render import write_report

    write_report(report, run_dir)
    return report


def _ordered(shots: list[int | str]) -> list[int | str]:
    """Numbers ascending, then `auto`, each once."""
    numbers = sorted({int(s) for s in shots if s != "auto"})
    return numbers + (["auto"] if "auto" in shots else [])
