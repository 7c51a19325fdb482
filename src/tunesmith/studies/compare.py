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
from typing import Literal

from tunesmith.atomic import atomic_open
from tunesmith.audit.report import audit_file
from tunesmith.config import (
    SEARCH_EXAMPLES,
    EndpointOptions,
    JudgeOptions,
    Shots,
    TrainConfig,
    parse_method,
    parse_methods,
    parse_shots,
    shots_label,
)
from tunesmith.cost import ApproachCost, Deployment, crossings, plot_costs
from tunesmith.data.examples import Example
from tunesmith.data.splits import TaskData, load_task_data, read_valid
from tunesmith.data.taskfile import TaskSpec, write_task
from tunesmith.endpoints.spec import is_endpoint, resolve_endpoint
from tunesmith.errors import UsageError
from tunesmith.evaluation.agreement import agreement
from tunesmith.evaluation.backends import LocalBackend, open_backend
from tunesmith.evaluation.runner import EvalResult, evaluate
from tunesmith.evaluation.tasks import get_task
from tunesmith.evaluation.throughput import Throughput, measure, this_machine
from tunesmith.hparams import auto_epochs
from tunesmith.modeling import DEFAULT_MODEL
from tunesmith.outputs import check_not_input, claim_dir
from tunesmith.pricing import load_prices
from tunesmith.prompting.prompter import PromptConfig
from tunesmith.report.costs import machine_pricing, price_approaches
from tunesmith.report.document import Report
from tunesmith.report.recommend import Recommendation, recommend, recommend_match
from tunesmith.report.render import write_report
from tunesmith.studies.curve import CurveConfig, parse_sizes, run_curve
from tunesmith.studies.incumbent import (
    days_left,
    incumbent_answers,
    incumbent_result,
    teacher_answers,
)
from tunesmith.studies.judging import JudgeReport, check_judge_options, judge_results
from tunesmith.studies.prompt_search import search_prompt
from tunesmith.studies.tune import tune
from tunesmith.training import train

log = logging.getLogger(__name__)

REPORT_FILES = ("report.json", "report.md", "report.html", "cost.png", "data/task.json")
"""Files compare writes at the top of REPORT_DIR; any of them marks a folder it made."""


@dataclass(kw_only=True)
class CompareConfig(EndpointOptions):
    """`tunesmith compare`: every flag is a field (its docstring is the help)."""

    data: str = field(default="", metadata={"metavar": "DIR", "required": True})
    """A `data prepare` folder: train.jsonl, validation.jsonl, test.jsonl, task.json."""
    model: str = DEFAULT_MODEL
    """The model to fine-tune (and to prompt, without --prompt-model)."""
    prompt_models: list[str] = field(default_factory=list, metadata={
        "flag": "--prompt-model", "append": True, "metavar": "SPEC"})
    """A model to prompt instead, repeatable: a model spec or openai:NAME (e.g.
    openai:gpt-4.1-mini); default: --model."""
    shots: Shots = field(default_factory=lambda: [0, 5, "auto"],
                         metadata={"parse": parse_shots, "metavar": "K[,K...][,auto]"})
    """Prompting rows per prompted model: a k-shot row per number; auto adds `best prompt`,
    the instruction/shots/selection/calibration chosen on the validation split."""
    methods: list[str] = field(default_factory=lambda: ["lora"], metadata={
        "flag": "--method", "parse": parse_methods, "metavar": "METHODS"})
    """Fine-tuning approaches, one row each, comma-separated (the names of `train --method`;
    DPO needs preference rows, which a prepared folder does not hold)."""
    epochs: int | Literal["auto"] = field(default="auto", metadata={"low": 1})
    """Training epochs, or auto (the rule for the data size; `train --epochs`)."""
    out: str = field(default="report", metadata={"metavar": "REPORT_DIR"})
    """Report folder: new, empty, or one compare wrote."""
    requests_per_month: int = field(default=100_000, metadata={"metavar": "N", "low": 0})
    """Volume the costs and the break-even are computed for."""
    prices: str | None = field(default=None, metadata={"metavar": "FILE"})
    """Price table YAML (default: the shipped one)."""
    max_train: int | None = field(default=None, metadata={"metavar": "N", "low": 1})
    """Use only the first N training examples (the splits are already shuffled)."""
    max_test: int | None = field(default=None, metadata={"metavar": "N", "low": 1})
    """Evaluate on the first N test examples."""
    mode: Literal["score", "generate"] = "score"
    """Classification: label log-likelihood (default) or generate-and-parse."""
    seed: int = field(default=0, metadata={"low": 0, "high": 2**32 - 1})
    """Shot selection, training and bootstrap seed."""
    search_examples: int = field(default=SEARCH_EXAMPLES, metadata={"metavar": "N", "low": 1})
    """auto: validation examples each prompt candidate is scored on."""
    tune: bool = False
    """Choose each fine-tune's learning rate and epochs on the validation split (as train
    --tune); every trial's time counts as training time."""
    tune_budget_minutes: float = field(default=60.0, metadata={"metavar": "MIN", "low": 0, "low_open": True})
    """--tune: wall-clock budget per fine-tuning approach."""
    audit: bool = True
    """Audit the training split and the test split against it (seconds with the TF-IDF probe;
    `tunesmith data audit` runs the full one); --no-audit skips it."""
    curve: bool = False
    """Also measure the learning curve of the first --method (as `tunesmith curve`, one
    fine-tune per size) into REPORT_DIR/curve and the report."""
    curve_sizes: list[int] | None = field(default=None, metadata={
        "parse": parse_sizes, "metavar": "SIZES"})
    """--curve: training-set sizes, or auto."""
    target: float | None = field(default=None, metadata={"metavar": "X", "low": 0, "high": 1, "high_open": True})
    """--curve: the metric value to estimate the examples needed for."""
    teacher: str | None = field(default=None, metadata={"metavar": "openai:NAME"})
    """A model that answers the training inputs (recorded as `migrate record` does): each
    --method also trains on its answers alone (`fine-tuned (lora, teacher)`) and beside the gold
    ones (`gold+teacher`); the report says how much of the gold row's quality each reaches."""
    incumbent: str | None = field(default=None, metadata={"metavar": "openai:ft:...|FILE"})
    """The model being replaced: `openai:ft:...` (recorded on the test inputs now, into
    REPORT_DIR/incumbent/) or a recording (`migrate record`'s golden.jsonl). Its answers are a
    row, and every row gets its agreement with them."""
    goal: Literal["best", "match-incumbent"] = "best"
    """`best`: the recommendation rule of every report; `match-incumbent`: the cheapest
    approach not worse than --incumbent by more than --margin on the gold metric (one-sided
    non-inferiority on the paired bootstrap), or none."""
    margin: float = field(default=0.02, metadata={"low": 0, "high": 1})
    """--goal match-incumbent: how much worse than the incumbent is still a match."""
    shutdowns: str | None = field(default=None, metadata={"metavar": "FILE"})
    """Shutdown table YAML for the incumbent's days left (default: the shipped one)."""
    quiet: bool = False
    """No progress bars."""
    deployment: Deployment = field(default_factory=Deployment)
    """How self-hosted rows are served and billed (`--deployment`, `--peak-to-average`, ...)."""
    judging: JudgeOptions = field(default_factory=JudgeOptions)
    """A judge of chat answers (`--judge`, `--judge-against`, ...)."""

    def __post_init__(self) -> None:
        if self.goal == "match-incumbent" and not self.incumbent:
            raise UsageError("--goal match-incumbent needs --incumbent (the model to match).")


@dataclass
class CompareInputs:
    """What every row of a comparison is measured on, checked before anything runs."""

    out: Path
    task: TaskData
    test: list[Example]
    train: list[Example]
    """The training split (its first --max-train examples)."""
    validation: list[Example]
    val_path: Path


def compare(cfg: CompareConfig) -> Report:
    """Run every approach and write the report folder.

    Raises:
        UsageError: the report folder is not ours, the data has no training split, an
            endpoint is misconfigured, `auto` without a validation split.
        EndpointError: an endpoint refused or stopped answering.
    """
    inputs = check_inputs(cfg)
    prices = load_prices(cfg.prices)
    machine = machine_pricing(prices, cfg.deployment, cfg.model, this_machine())  # fails now
    hardware = machine.hardware
    prompt_models = cfg.prompt_models or [cfg.model]
    endpoints = {spec: resolve_endpoint(spec, cfg.base_url, cfg.api_key_env).base_url
                 for spec in prompt_models if is_endpoint(spec)}  # misconfigured: fail now
    out, td = inputs.out, inputs.task
    write_task(out / "data", td.spec)  # first: it marks REPORT_DIR as compare's own
    audit = audit_summary(td.folder) if cfg.audit else {}
    incumbent, reference = None, False
    if cfg.incumbent:  # recorded first: a model that cannot be asked fails before any training
        recorded = incumbent_answers(cfg.incumbent, inputs.test, out, cfg)
        incumbent = incumbent_result(recorded, inputs.test, td.spec)
        # no gold labels: the test split's answers are the incumbent's own
        reference = all(answer.strip() == e.target.strip()
                        for answer, e in zip(recorded.answers, inputs.test))

    results, throughput, searches = prompting_rows(cfg, inputs, prompt_models)
    tuned, trainings, billing = fine_tuned_rows(cfg, inputs, throughput)
    results += tuned
    curve = None
    if cfg.curve:
        curve = run_curve(CurveConfig(
            data=cfg.data, out=str(out / "curve"), model=cfg.model, method=cfg.methods[0],
            sizes=cfg.curve_sizes, target=cfg.target, max_test=cfg.max_test,
            max_train=cfg.max_train, seed=cfg.seed, mode=cfg.mode, quiet=cfg.quiet),
            prompts=[r for r in results if r.kind == "prompt"], rates=throughput.get(cfg.model),
            say=lambda message: log.info("curve: %s", message))

    # ---- cost and recommendation -----------------------------------------------------------
    candidates = list(results)
    if incumbent is not None:
        results = [incumbent, *results]
    costs, openai_costs = price_approaches(results, prices, hardware, throughput,
                                           training=billing, endpoints=endpoints,
                                           deployment=cfg.deployment, machine=machine)
    judged = None
    if cfg.judging.judge:
        judged = judge_results(cfg.judging, results, inputs.test, td.spec, endpoint=cfg,
                               prices=prices, seed=cfg.seed)
    replacing = None
    if incumbent is not None:
        rec, replacing = replacement(cfg, incumbent, candidates, costs, td.spec, reference,
                                     trainings)
    else:
        rec = judged_recommendation(cfg, candidates, costs, td.spec, judged)
    prompts = [r for r in results if r.kind == "prompt"]
    payback = {p.name: {f.name: crossings(costs[p.name], costs[f.name]) for f in tuned}
               for p in prompts}
    report = Report(
        td.spec.to_dict(), str(cfg.data), cfg.model, prompt_models, len(inputs.test),
        len(inputs.train), results, costs, openai_costs, payback, rec, trainings,
        hardware.name, prices.as_of, out, {k: v.to_dict() for k, v in throughput.items()},
        searches, cfg.requests_per_month, audit, curve, replacing,
        distillation(candidates, trainings), judged.to_dict() if judged is not None else None)
    best = report.best_prompt
    marks = [{**m, "usd": costs[m["cheaper_above"]].first_year(m["requests_per_month"])}
             for per_fine in payback.values() for points in per_fine.values() for m in points]
    plot_costs(list(costs.values()) + [openai_costs[best.name],
                                       openai_costs[report.fine_tuned.name]],
               out / "cost.png", marker=cfg.requests_per_month, marks=marks)
    write_report(report)
    return report


def replacement(cfg: CompareConfig, incumbent: EvalResult, candidates: list[EvalResult],
                costs: dict, spec, reference: bool,
                trainings: dict) -> tuple[Recommendation, dict]:
    """The recommendation when a model is being replaced, and the report's account of it:
    each candidate's agreement with the incumbent, its non-inferiority test (--goal
    match-incumbent), the incumbent's days left, and how to serve the winner."""
    task = get_task(spec.task)
    agreements = {r.name: agreement(task, incumbent.predictions, r.predictions, spec,
                                    seed=cfg.seed) for r in candidates}
    tests = None
    if cfg.goal == "match-incumbent":
        rec, tests = recommend_match(candidates, incumbent, costs, spec.labels,
                                     cfg.requests_per_month, cfg.margin, seed=cfg.seed)
    else:
        rec = recommend(candidates, costs, spec.labels, cfg.requests_per_month, seed=cfg.seed)
    account = {"name": incumbent.name, "spec": cfg.incumbent, "model": incumbent.model,
               **days_left(incumbent.model, cfg.shutdowns),
               "agreement": agreements, "goal": cfg.goal, "margin": cfg.margin,
               "non_inferiority": tests, "reference_is_incumbent": reference,
               "serve": serving(rec.choice, candidates, trainings)}
    return rec, account


def distillation(candidates: list[EvalResult], trainings: dict) -> list[dict]:
    """For each row trained on a teacher's answers: how much of the gold-trained row's quality
    (the same method) it reaches."""
    rows = {r.name: r for r in candidates}
    out = []
    for name, t in trainings.items():
        if t.get("trained_on", "gold") == "gold":
            continue
        gold = next((g for g, u in trainings.items() if u["method"] == t["method"]
                     and u.get("trained_on") == "gold"), None)
        if gold is None or name not in rows:
            continue
        score, reference = rows[name].score, rows[gold].score
        out.append({"name": name, "trained_on": t["trained_on"], "score": score,
                    "gold_row": gold, "gold_score": reference,
                    "share_of_gold": round(score / reference, 4) if reference else None})
    return out


def serving(choice: str, candidates: list[EvalResult], trainings: dict) -> list[str]:
    """The commands that put the recommended approach where the incumbent was."""
    row = next((r for r in candidates if r.name == choice), None)
    if row is None:
        return []
    if row.kind == "fine-tune":
        run = trainings[row.name]["run"]
        return [f"tunesmith serve --model {run}/final --keys keys.txt --port 8000",
                'client = OpenAI(base_url="http://HOST:8000/v1", api_key=KEY)  # was OpenAI\'s',
                f'client.chat.completions.create(model="{run}/final", messages=...)']
    if is_endpoint(row.model):
        return [f"keep calling {row.model.removeprefix('openai:')} at its endpoint with the "
                f"{row.name} prompt (report.json: prompt_searches)"]
    return [f"tunesmith serve --model {row.model} --keys keys.txt --port 8000",
            f"prompt it as the {row.name} row does (report.json: approaches[].prompt)"]


def judged_recommendation(cfg: CompareConfig, candidates: list[EvalResult],
                          costs: dict[str, ApproachCost], spec: TaskSpec,
                          judged: JudgeReport | None) -> Recommendation:
    """The rule on the judged win rate when a trusted judge ran, else on the task metric (and
    the reason says why the judge did not decide)."""
    if judged is not None and judged.checks.trusted:
        rec = recommend(candidates, costs, spec.labels, cfg.requests_per_month, seed=cfg.seed,
                        judged={r.name: judged.scores[r.name] for r in candidates},
                        judged_metric=judged.metric)
        rec.reason = f"Decided on the {judged.metric}. " + rec.reason
        return rec
    rec = recommend(candidates, costs, spec.labels, cfg.requests_per_month, seed=cfg.seed)
    if judged is not None:
        rec.reason += (f" The judge ({judged.judge}) is not trusted on this data ("
                       + "; ".join(judged.checks.why[:2])
                       + f"), so it does not decide: {get_task(spec.task).metric_name} does.")
    return rec


def check_inputs(cfg: CompareConfig) -> CompareInputs:
    """The report folder claimed, the splits read, every approach checked against the task.

    Raises:
        UsageError: see `compare`.
    """
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
        parse_method(method).check_prepared(td.spec.task)
    check_judge_options(cfg.judging, td.spec.task)
    val_path = td.folder / "validation.jsonl"
    validation = read_valid(val_path).examples if val_path.is_file() and \
        val_path.stat().st_size else []
    if cfg.tune and not validation:
        raise UsageError(f"--tune chooses settings on {val_path}, which is missing or empty.")
    if "auto" in cfg.shots and not validation:
        raise UsageError(f"--shots auto chooses the prompt on {val_path}, which is missing or "
                         "empty; prepare the data with --val, or give --shots numbers only.")
    return CompareInputs(out, td, test, train_examples, validation, val_path)


def prompting_rows(cfg: CompareConfig, inputs: CompareInputs, prompt_models: list[str],
                   ) -> tuple[list[EvalResult], dict[str, Throughput], dict[str, dict]]:
    """Each prompted model's rows (a k-shot row per --shots number, `best prompt` for auto),
    the measured rates of the models run here, and the prompt searches."""
    td, test, train_examples = inputs.task, inputs.test, inputs.train
    results: list[EvalResult] = []
    throughput: dict[str, Throughput] = {}
    searches: dict[str, dict] = {}
    for spec in prompt_models:
        backend = open_backend(spec, base_url=cfg.base_url, api_key_env=cfg.api_key_env,
                               concurrency=cfg.concurrency, use_cache=cfg.use_cache,
                               seed=cfg.seed, max_retries=cfg.max_retries)
        prefix = "" if prompt_models == [cfg.model] else f"{spec} · "
        for shots in parse_shots(",".join(map(str, cfg.shots))):
            if shots == "auto":
                search = search_prompt(backend, td.spec, train_examples, inputs.validation,
                                       mode=cfg.mode, seed=cfg.seed,
                                       max_examples=cfg.search_examples)
                searches[spec] = search.to_dict()
                prompt = search.best
            else:
                prompt = PromptConfig(int(shots), seed=cfg.seed)
            name = prefix + shots_label(shots)
            log.info("evaluating %s on %d test examples", name, len(test))
            results.append(evaluate(backend, test, td.spec, prompt=prompt, train=train_examples,
                                    name=name, kind="prompt", mode=cfg.mode))
        if isinstance(backend, LocalBackend):
            throughput[spec] = measure(backend.model)
        del backend
        gc.collect()
    return results, throughput, searches


def teacher_examples(cfg: CompareConfig, inputs: CompareInputs) -> list[Example]:
    """The training inputs answered by --teacher (recorded as `migrate record` does, into
    REPORT_DIR/teacher/; cached), as training examples. Answers that are empty, or name no
    label of a classification task, are left out (counted in the log)."""
    answers = teacher_answers(cfg.teacher, inputs.train, inputs.out / "teacher", cfg)
    task = get_task(inputs.task.spec.task)
    kept = []
    for e, answer in zip(inputs.train, answers):
        _, invalid = task.parse(answer, inputs.task.spec)
        if answer.strip() and not invalid:
            kept.append(e.with_answer(answer))
    log.info("teacher %s: %d of %d training inputs answered usably", cfg.teacher, len(kept),
             len(inputs.train))
    if not kept:
        raise UsageError(f"--teacher {cfg.teacher} gave no usable answer to the "
                         f"{len(inputs.train)} training inputs (empty, or no label).")
    return kept


def fine_tuned_rows(cfg: CompareConfig, inputs: CompareInputs,
                    throughput: dict[str, Throughput],
                    ) -> tuple[list[EvalResult], dict[str, dict], dict[str, tuple[float, int]]]:
    """One fine-tune per --method, each evaluated on the test split: the rows, each training's
    summary, and (training seconds, billed tokens) per row for pricing. `throughput` gains each
    run's rates."""
    out, td, test = inputs.out, inputs.task, inputs.test
    sets = {"gold": inputs.train}
    if cfg.teacher:  # the teacher's answers to the same inputs, alone and beside the gold ones
        taught = teacher_examples(cfg, inputs)
        sets |= {"teacher": taught, "gold+teacher": inputs.train + taught}
    files = {}
    for kind, examples in sets.items():
        files[kind] = out / "data" / ("train.jsonl" if kind == "gold" else
                                      f"train-{kind.replace('+', '-')}.jsonl")
        with atomic_open(files[kind]) as f:
            f.writelines(json.dumps(e.to_chat(), ensure_ascii=False) + "\n" for e in examples)
    results: list[EvalResult] = []
    trainings: dict[str, dict] = {}
    billing: dict[str, tuple[float, int]] = {}
    plan = [(method, kind) for method in cfg.methods for kind in sets]
    for i, (method, kind) in enumerate(plan):
        name = f"fine-tuned ({method})" if kind == "gold" else f"fine-tuned ({method}, {kind})"
        run_dir = out / ("run" if i == 0 else
                         f"run-{method}" + ("" if kind == "gold" else
                                            f"-{kind.replace('+', '-')}"))
        train_file = files[kind]
        if run_dir.exists():  # compare owns its run folders: a rerun trains afresh (real times)
            log.info("replacing the earlier fine-tune in %s", run_dir)
            shutil.rmtree(run_dir)
        started = time.perf_counter()
        config = TrainConfig(
            train_file=str(train_file),
            val_file=str(inputs.val_path) if inputs.validation else None,
            out=str(run_dir), model=cfg.model, method=method, epochs=cfg.epochs, seed=cfg.seed,
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
        trainings[name] = {"run": str(run_dir), "method": method, "trained_on": kind,
                           "examples": len(sets[kind]), **summary,
                           "openai_auto_epochs": auto_epochs(len(sets[kind]))}
    return results, trainings, billing


SHOWN = 5
"""Examples of each audit finding the report lists."""


def audit_summary(folder: Path) -> dict:
    """`data audit` of train.jsonl, and of test.jsonl against it: counts and the top findings."""
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
