"""`tunesmith cost`: what each approach costs, from tokens and speeds measured here.

    prompting rows    zero-shot and each --shots row, evaluated on a sample of the test split
                      (their tokens per request) and priced at the model's measured rates
    the fine-tune     a measured one: `--run RUN` (a `train` folder) evaluated on the same
                      sample, its training time from its own step records; or a probe (a few
                      LoRA steps trained here, evaluated on the sample for its tokens; its
                      training time the measured speed x the tokens of auto epochs)
    the reference     the same tokens at OpenAI's list prices
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tunesmith.config import Shots, TrainConfig, parse_shots, shots_label
from tunesmith.cost import ApproachCost, Deployment, crossings, plot_costs
from tunesmith.data.examples import Example
from tunesmith.data.splits import load_task_data, read_valid
from tunesmith.data.tokens import count_tokens
from tunesmith.errors import UsageError
from tunesmith.evaluation.backends import LocalBackend, open_backend
from tunesmith.evaluation.runner import EvalResult, evaluate
from tunesmith.evaluation.throughput import measure, this_machine
from tunesmith.hparams import auto_batch_size, auto_epochs, billed_tokens
from tunesmith.modeling import DEFAULT_MODEL, load_for_inference, run_final_dir
from tunesmith.outputs import check_not_input, check_parent
from tunesmith.pricing import load_prices
from tunesmith.prompting.prompter import PromptConfig
from tunesmith.report.costs import machine_pricing, price_approaches
from tunesmith.studies.prompt_search import search_prompt
from tunesmith.training import train
from tunesmith.training.records import read_metrics, training_time

SAMPLE = 32
"""Test examples timed per approach."""


@dataclass(kw_only=True)
class CostConfig:
    """`tunesmith cost`: every flag is a field (its docstring is the help)."""

    data: str = field(default="", metadata={"metavar": "DIR|FILE", "required": True})
    """A `data prepare` folder or a data file."""
    model: str = DEFAULT_MODEL
    """The model prompted, and fine-tuned for the fine-tuned row."""
    shots: Shots = field(default_factory=lambda: [5],
                         metadata={"parse": parse_shots, "metavar": "K[,K...][,auto]"})
    """Prompting rows beside zero-shot (whose prompt the fine-tuned row is served from)."""
    requests_per_month: int = field(default=100_000, metadata={"metavar": "N", "low": 0})
    """Volume the first-year costs and the break-even are computed for."""
    prices: str | None = field(default=None, metadata={"metavar": "FILE"})
    """Price table YAML (default: the shipped one)."""
    plot: str | None = field(default=None, metadata={"metavar": "PNG"})
    """Write the cost-vs-requests plot here."""
    fine_tuned_run: str | None = field(default=None, metadata={"metavar": "RUN", "flag": "--run"})
    """A `train` run folder of this data: the fine-tuned row is that model, measured (default:
    a probe of a few LoRA steps trained here)."""
    deployment: Deployment = field(default_factory=Deployment)
    """How self-hosted rows are served and billed (`--deployment`, `--peak-to-average`, ...)."""


def estimate(cfg: CostConfig) -> dict:
    """Measure and price every approach; the `cost --json` document.

    Raises:
        UsageError: a bad --plot path, --shots auto without a validation split, a --run that
            is not a finished run of --model.
    """
    if cfg.plot:
        check_parent(cfg.plot, "--plot")
        check_not_input([cfg.plot], [cfg.data], "--plot")
    if cfg.fine_tuned_run:
        _check_run(cfg)
    prices = load_prices(cfg.prices)
    machine = machine_pricing(prices, cfg.deployment, cfg.model, this_machine())
    hardware = machine.hardware
    td = load_task_data(cfg.data)
    sample = td.test[:SAMPLE]
    model, tokenizer = load_for_inference(cfg.model)
    rows = {}
    backend = LocalBackend(model, tokenizer, cfg.model)
    for k in parse_shots(",".join(map(str, [0, *cfg.shots]))):
        if k == "auto":
            validation = _validation(td.folder)
            prompt = search_prompt(backend, td.spec, td.train, validation).best
        else:
            prompt = PromptConfig(int(k))
        rows[shots_label(k)] = evaluate(backend, sample, td.spec, prompt=prompt, train=td.train,
                                        name=shots_label(k))
    rates = measure(model)
    del model, backend
    train_examples = td.train or td.test
    with tempfile.TemporaryDirectory() as tmp:
        fine, training = _fine_tuned_row(cfg, td.spec, sample, train_examples, tokenizer,
                                         Path(tmp))
    train_seconds, billed = training["estimated_seconds"], training["billed_tokens"]
    results = [*rows.values(), fine]
    # A fine-tune has its base's architecture and size: the same rates.
    self_costs, reference = price_approaches(results, prices, hardware,
                                             {cfg.model: rates, fine.model: rates},
                                             training={fine.name: (train_seconds, billed)},
                                             deployment=cfg.deployment, machine=machine)
    costs: list[ApproachCost] = list(self_costs.values()) + [
        dataclasses.replace(c, name=f"{c.name} (OpenAI)") for c in reference.values()]
    volume = cfg.requests_per_month
    best_prompt = min(costs[:len(rows)], key=lambda c: c.first_year(volume))
    points = crossings(best_prompt, self_costs[fine.name])
    if cfg.plot:
        plot_costs(costs, Path(cfg.plot), marker=cfg.requests_per_month)
    return {"approaches": [_row(c, volume) for c in costs],
            "training": training, "machine": machine.note,
            "throughput": rates.to_dict(), "sample": len(sample),
            "best_prompt": best_prompt.name,
            "crossings": points, "requests_per_month": cfg.requests_per_month,
            "deployment": dataclasses.asdict(cfg.deployment),
            "prices_as_of": prices.as_of, "prices_source": prices.source}


def _check_run(cfg: CostConfig) -> None:
    """--run is a finished run of --model (checked before anything is loaded)."""
    run = Path(cfg.fine_tuned_run)
    if run_final_dir(str(run)) == str(run) or not (run / "metrics.jsonl").is_file():
        raise UsageError(f"--run {run}: not a finished `tunesmith train` folder (it needs "
                         "final/, config.yaml and metrics.jsonl).")
    base = (yaml.safe_load((run / "config.yaml").read_text("utf-8")) or {}).get("model")
    if base != cfg.model:
        raise UsageError(f"--run {run} was trained from {base}, not --model {cfg.model}: "
                         f"price it with --model {base}.")


def _fine_tuned_row(cfg: CostConfig, spec, sample: list[Example], train_examples: list[Example],
                    tokenizer, tmp: Path) -> tuple[EvalResult, dict]:
    """The fine-tuned row, measured: `--run`'s model (its training time from its step records)
    or a probe trained here (its training time the measured speed x auto epochs' tokens)."""
    if cfg.fine_tuned_run:
        run = Path(cfg.fine_tuned_run)
        seconds, tokens = training_time(read_metrics(run / "metrics.jsonl"))
        training = {"source": f"the run {run} (its step records)", "examples": None,
                    "epochs": None, "billed_tokens": tokens, "tokens": tokens,
                    "measured_tokens_per_s": tokens / seconds if seconds else None,
                    "estimated_seconds": seconds}
        name = f"fine-tuned ({run.name})"
    else:
        run = tmp / "probe"
        tok_per_s = training_speed(cfg.model, train_examples, out=run)
        counts = count_tokens([e.with_system(spec.system) for e in train_examples], tokenizer)
        epochs = auto_epochs(len(train_examples))
        training = {"source": "a probe of a few LoRA steps trained here",
                    "examples": len(train_examples), "epochs": epochs,
                    "billed_tokens": billed_tokens(counts.total, epochs),
                    "tokens": sum(counts.total) * epochs, "measured_tokens_per_s": tok_per_s,
                    "estimated_seconds": sum(counts.total) * epochs / tok_per_s}
        name = "fine-tuned (lora, probe)"
    backend = open_backend(str(run))
    fine = evaluate(backend, sample, spec, kind="fine-tune", name=name)
    if not cfg.fine_tuned_run:
        fine.notes.append("serving tokens measured on a probe trained a few steps (its quality "
                          "is not the point; pass --run RUN for a real fine-tune's)")
    del backend
    return fine, training


PROMPTING_PASSES = 30
"""The prompting arms of `compare` (zero-shot, 5-shot, the prompt search and the best prompt)
cost about this many zero-shot passes over the test split: measured on the demo's data (50
test and 50 validation examples, 8 labels), where the search's similar shots make long
prompts. Its own measured passes replace it after a run."""


@dataclass
class CompareEstimate:
    """How long `compare` will take here, from a short measured probe."""

    train_tokens_per_s: float
    """LoRA training, measured on a few steps of the data (the first skipped)."""
    train_tokens: int
    """Tokens of the training split x the auto epochs."""
    scored_per_s: float
    """Test examples scored zero-shot per second, measured."""
    test_examples: int
    probe_seconds: float

    @property
    def training_minutes(self) -> float:
        return self.train_tokens / self.train_tokens_per_s / 60

    @property
    def prompting_minutes(self) -> float:
        return PROMPTING_PASSES * self.test_examples / self.scored_per_s / 60

    @property
    def minutes(self) -> float:
        return self.training_minutes + self.prompting_minutes


def estimate_compare(folder: Path, model: str, *, probe_examples: int = 16) -> CompareEstimate:
    """Measure a few LoRA steps and a zero-shot pass on `folder`'s data (a `data prepare`
    folder), and scale them to what `compare` runs with its defaults."""
    started = time.perf_counter()
    td = load_task_data(folder)
    backend = LocalBackend(*load_for_inference(model), model)
    sample = td.test[:probe_examples]
    evaluate(backend, sample[:2], td.spec)  # warm-up: one-off kernel set-up
    t0 = time.perf_counter()
    evaluate(backend, sample, td.spec)
    scored_per_s = len(sample) / (time.perf_counter() - t0)
    counts = count_tokens([e.with_system(td.spec.system) for e in td.train], backend.tokenizer)
    del backend
    tokens_per_s = training_speed(model, td.train)
    return CompareEstimate(tokens_per_s, sum(counts.total) * auto_epochs(len(td.train)),
                           scored_per_s, len(td.test), time.perf_counter() - started)


def _row(c: ApproachCost, volume: int) -> dict:
    """An approach's costs at `volume` requests a month, as deployed."""
    month = c.month(volume)
    d = {k: v for k, v in c.to_dict().items() if k != "deployment"}
    return d | {"monthly_usd": c.monthly(volume), "first_year_usd": c.first_year(volume),
                "machines": None if month is None else month.machines}


def training_speed(model: str, examples: list[Example], out: Path | None = None) -> float:
    """Real tokens/s of LoRA training here, measured on a few steps (the first one skipped).
    `out`: keep the probe's run folder there."""
    batch = auto_batch_size(len(examples))
    subset = examples[: batch * 4]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.jsonl"
        path.write_text("".join(json.dumps(e.to_chat()) + "\n" for e in subset))
        run = out or Path(tmp) / "run"
        train(TrainConfig(train_file=str(path), out=str(run), model=model,
                          epochs=1, batch_size=batch, quiet=True))
        records = read_metrics(run / "metrics.jsonl")
    steps = [r for r in records if "tokens_per_s" in r][1:] or \
        [r for r in records if "tokens_per_s" in r]
    return sum(r["tokens"] for r in steps) / sum(r["tokens"] / r["tokens_per_s"] for r in steps)


def _validation(folder: Path) -> list[Example]:
    path = folder / "validation.jsonl"
    if not path.is_file() or not path.stat().st_size:
        raise UsageError(f"--shots auto chooses the prompt on {path}, which is missing or "
                         "empty; give --shots numbers only.")
    return read_valid(path).examples
