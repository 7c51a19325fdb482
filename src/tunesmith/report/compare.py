"""`compare`: zero-shot, few-shot and a fine-tune of the same model, on the same test examples,
priced, with a recommendation, written as report.json / report.md / report.html."""

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
from tunesmith.cost import ApproachCost, break_even, openai, plot_costs, self_hosted
from tunesmith.data.splits import load_task_data
from tunesmith.data.taskfile import write_task
from tunesmith.errors import UsageError
from tunesmith.evaluation.backends import LocalBackend
from tunesmith.evaluation.runner import EvalResult, evaluate
from tunesmith.hparams import auto_epochs
from tunesmith.modeling import DEFAULT_MODEL, load_for_inference
from tunesmith.outputs import check_not_input, claim_dir
from tunesmith.pricing import load_prices
from tunesmith.prompting.prompter import PromptConfig
from tunesmith.report.recommend import Recommendation, recommend

log = logging.getLogger(__name__)

REPORT_FILES = ("report.json", "report.md", "report.html", "cost.png", "data/task.json")
"""Files compare writes at the top of REPORT_DIR; any of them marks a folder it made."""


@dataclass
class CompareConfig:
    data: str
    """A `data prepare` folder: train.jsonl, validation.jsonl, test.jsonl, task.json."""
    out: str = "report"
    model: str = DEFAULT_MODEL
    shots: list[int] = field(default_factory=lambda: [0, 5])
    """Prompting baselines to run (0 = zero-shot)."""
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


@dataclass
class Report:
    task: dict
    data: str
    model: str
    n_test: int
    n_train: int
    results: list[EvalResult]
    costs: dict[str, ApproachCost]
    openai_costs: dict[str, ApproachCost]
    break_even_requests: float | None
    recommendation: Recommendation
    training: dict
    hardware: str
    prices_as_of: str
    out: Path
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S"))

    def to_dict(self) -> dict:
        return {
            "task": self.task["task"], "labels": self.task["labels"], "system": self.task["system"],
            "data": self.data, "model": self.model, "n_test": self.n_test, "n_train": self.n_train,
            "created": self.created, "hardware": self.hardware, "prices_as_of": self.prices_as_of,
            "approaches": [{**r.to_dict(), "cost": self.costs[r.name].to_dict(),
                            "openai_cost": self.openai_costs[r.name].to_dict()}
                           for r in self.results],
            "break_even_requests": self.break_even_requests,
            "recommendation": self.recommendation.to_dict(),
            "training": self.training,
        }


def compare(cfg: CompareConfig) -> Report:
    """Run every approach and write the report folder."""
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
    prices = load_prices(cfg.prices)
    on_gpu = torch.cuda.is_available()
    hardware = prices.hardware(on_gpu)  # a price table without it fails now, not after training
    results: list[EvalResult] = []

    # ---- prompting baselines ---------------------------------------------------------------
    model, tokenizer = load_for_inference(cfg.model)
    backend = LocalBackend(model, tokenizer, cfg.model)
    for k in sorted(set(cfg.shots)):
        log.info("evaluating %s on %d test examples", f"{k}-shot" if k else "zero-shot", len(test))
        results.append(evaluate(backend, test, td.spec, prompt=PromptConfig(k, seed=cfg.seed),
                                train=train_examples, kind="prompt", mode=cfg.mode))
    del model, backend
    gc.collect()

    # ---- fine-tune -------------------------------------------------------------------------
    write_task(out / "data", td.spec)  # first: it marks REPORT_DIR as compare's own
    train_file = out / "data" / "train.jsonl"
    with atomic_open(train_file) as f:
        f.writelines(json.dumps(e.to_chat(), ensure_ascii=False) + "\n" for e in train_examples)
    val = td.folder / "validation.jsonl"
    run_dir = out / "run"
    if run_dir.exists():  # compare owns REPORT_DIR/run: a rerun trains afresh, so times are real
        log.info("replacing the earlier fine-tune in %s", run_dir)
        shutil.rmtree(run_dir)
    started = time.perf_counter()
    trained = train(TrainConfig(
        train_file=str(train_file), val_file=str(val) if val.is_file() and val.stat().st_size else None,
        out=str(run_dir), model=cfg.model, method=cfg.method, epochs=cfg.epochs, seed=cfg.seed,
        quiet=cfg.quiet))
    train_seconds = time.perf_counter() - started
    del trained.model
    gc.collect()
    model, tokenizer = load_for_inference(str(run_dir))
    log.info("evaluating the fine-tuned model on %d test examples", len(test))
    results.append(evaluate(LocalBackend(model, tokenizer, str(run_dir)), test, td.spec,
                            kind="fine-tune", name=f"fine-tuned ({cfg.method})", mode=cfg.mode))
    del model
    gc.collect()

    # ---- cost and recommendation -----------------------------------------------------------
    reference = prices.default_openai
    epochs = trained.config.epochs
    costs, openai_costs = {}, {}
    for r in results:
        ft = r.kind == "fine-tune"
        costs[r.name] = self_hosted(r.name, r.kind, r.latency_s, hardware,
                                    train_seconds if ft else 0.0)
        billed = trained.trained_tokens if ft else 0  # tokens x epochs, as OpenAI bills
        openai_costs[r.name] = openai(r.name, r.kind, r.prompt_tokens, r.completion_tokens,
                                      reference, billed)
    prompts = [r for r in results if r.kind == "prompt"]
    best_prompt = max(prompts, key=lambda r: r.score)
    fine = results[-1]
    labels = td.spec.labels
    rec = recommend(results, costs, labels, cfg.requests_per_month, seed=cfg.seed)
    report = Report(
        td.spec.to_dict(), str(cfg.data), cfg.model, len(test), len(train_examples), results,
        costs, openai_costs, break_even(costs[best_prompt.name], costs[fine.name]), rec,
        {"run": str(run_dir), "seconds": train_seconds, "epochs": epochs,
         "steps": trained.steps, "trained_tokens": trained.trained_tokens,
         "tokens_per_s": trained.tokens_per_s, "initial_valid_loss": trained.initial_valid_loss,
         "final_valid_loss": trained.final_valid_loss, "openai_auto_epochs":
         auto_epochs(len(train_examples))},
        hardware.name, prices.as_of, out)
    plot_costs(list(costs.values()) + [openai_costs[best_prompt.name], openai_costs[fine.name]],
               out / "cost.png", marker=cfg.requests_per_month)
    from tunesmith.report.render import write_report

    write_report(report, run_dir)
    return report
