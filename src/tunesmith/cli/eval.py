"""`tunesmith eval --model M|RUN|openai:NAME --data FILE|DIR [--shots K,...|auto]`: score one model
on a task, under one prompt configuration per `--shots` value."""

from __future__ import annotations

import argparse
from pathlib import Path

from tunesmith.cli.fields import add_fields, config_from_args
from tunesmith.cli.output import print_json, table
from tunesmith.config import EndpointOptions, EvalConfig, JudgeOptions, shots_label
from tunesmith.data.splits import load_task_data, read_valid
from tunesmith.data.tasks import task_kind
from tunesmith.errors import UsageError
from tunesmith.evaluation.backends import open_backend
from tunesmith.evaluation.runner import EvalResult, evaluate
from tunesmith.modeling import run_final_dir
from tunesmith.pricing import load_prices
from tunesmith.prompting.prompter import PromptConfig
from tunesmith.studies.judging import JudgeReport, check_judge_options, judge_results
from tunesmith.studies.prompt_search import SearchResult, search_prompt

FIELDS = ["model", "data", "shots", "shot_selection", "instruction", "calibrate", "seed",
          "search_examples", "mode", "max_examples", "batch_size"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a base, fine-tuned or endpoint model on a task's "
                       "test data",
                       description="Classification: accuracy, macro-F1, per-class P/R/F1, confusion "
                       "matrix. NER: entity P/R/F1. Chat: loss, exact match, token F1. "
                       "openai:NAME evaluates a chat model behind any OpenAI-compatible endpoint "
                       "(OPENAI_BASE_URL, OPENAI_API_KEY).")
    add_fields(p, EvalConfig, FIELDS)
    add_judge_args(p)
    add_endpoint_args(p)
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(run=run)


def add_endpoint_args(p: argparse.ArgumentParser) -> None:
    add_fields(p.add_argument_group("endpoint models (openai:NAME)"), EndpointOptions,
               list(EndpointOptions.ENDPOINT_FIELDS))


def add_judge_args(p: argparse.ArgumentParser) -> None:
    add_fields(p.add_argument_group("a judge of open-ended answers (chat tasks)"), JudgeOptions,
               list(JudgeOptions.JUDGE_FIELDS))


def judge_from_args(args: argparse.Namespace) -> JudgeOptions:
    return config_from_args(JudgeOptions, args, list(JudgeOptions.JUDGE_FIELDS))


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(EvalConfig, args, FIELDS + list(EndpointOptions.ENDPOINT_FIELDS))
    judging = judge_from_args(args)
    td = load_task_data(cfg.data)
    check_judge_options(judging, td.spec.task)
    test = td.test[: cfg.max_examples] if cfg.max_examples else td.test
    backend = open_backend(cfg.model, base_url=cfg.base_url, api_key_env=cfg.api_key_env,
                           concurrency=cfg.concurrency, use_cache=cfg.use_cache,
                           batch_size=cfg.batch_size, seed=cfg.seed,
                           max_retries=cfg.max_retries)
    fine_tuned = (Path(run_final_dir(cfg.model)) / "tunesmith.json").is_file()
    outcomes: list[tuple[EvalResult, SearchResult | None]] = []
    for shots in cfg.shots:
        search = None
        if shots == "auto":
            val_path = td.folder / "validation.jsonl"
            if not val_path.is_file():
                raise UsageError(f"--shots auto chooses the prompt on {val_path}, which is "
                                 "missing; prepare the data with --val, or give --shots a number.")
            search = search_prompt(backend, td.spec, td.train, read_valid(val_path).examples,
                                   mode=cfg.mode, seed=cfg.seed,
                                   max_examples=cfg.search_examples)
            prompt = search.best
        else:
            prompt = PromptConfig(shots, cfg.shot_selection, cfg.instruction, cfg.calibrate,
                                  cfg.seed)
        result = evaluate(backend, test, td.spec, prompt=prompt, train=td.train,
                          kind="fine-tune" if fine_tuned else "prompt", mode=cfg.mode,
                          name=shots_label(shots) if len(cfg.shots) > 1 or search else "")
        outcomes.append((result, search))
    client = getattr(backend, "client", None)
    traffic = None if client is None else {
        "endpoint": client.endpoint.base_url, "model": client.endpoint.model,
        "from_cache": client.cache.hits if client.cache else 0, "asked": client.received}
    del backend  # a judge loaded here needs the memory
    judged = None
    if judging.judge:
        judged = judge_results(judging, [r for r, _ in outcomes], test, td.spec, endpoint=cfg,
                               prices=load_prices(), seed=cfg.seed)
    if args.json:
        docs = []
        for result, search in outcomes:
            doc = result.to_dict(with_predictions=True)
            if search is not None:
                doc["prompt_search"] = search.to_dict()
            docs.append(doc)
        # one value: its result (as always); several: {"results": [...]}
        doc = docs[0] if len(docs) == 1 else {"results": docs}
        if traffic is not None:
            doc["requests"] = traffic
        if judged is not None:
            doc["judge"] = judged.to_dict()
        print_json(doc)
        return 0
    for result, search in outcomes:
        if search is not None:
            print(render_search(search))
        print(render_result(result))
    if judged is not None:
        print(render_judge(judged))
    if traffic is not None:
        print(f"  requests: {traffic['asked']} to {traffic['endpoint']}, "
              f"{traffic['from_cache']} answered from the cache")
    return 0


def render_judge(j: JudgeReport) -> str:
    """The judge's figures and its checks, for the terminal."""
    c = j.checks
    lines = [f"judged by {j.judge} ({j.mode}) against {j.against} on {j.n} inputs: "
             + ("trusted" if c.trusted else "NOT trusted")]
    if j.mode == "pairwise":
        rows = [[name, f"{r['wins']}/{r['ties']}/{r['losses']}", str(r["invalid"]),
                 f"{r['win_rate']:.3f} [{r['low']:.3f}, {r['high']:.3f}]",
                 f"{r['length_controlled']:.3f}", f"{r['order_agreement']:.2f}"]
                for name, r in j.rows.items()]
        lines.append(table(rows, ["approach", "win/tie/loss", "invalid", "win rate [95%]",
                                  "length-controlled", "order kept"]))
    else:
        rows = [[name, f"{r['mean']:.2f} [{r['low']:.2f}, {r['high']:.2f}]", str(r["invalid"])]
                for name, r in j.rows.items()]
        lines.append(table(rows, ["answers", "mean grade (1-10) [95%]", "invalid"]))
    lines.append(f"  probes: the reference preferred in {c.probe_pass:.0%} of {c.probes} "
                 f"(needs {c.min_probe:.0%}): " + ", ".join(f"{k} {v:.0%}"
                                                           for k, v in c.probe_by_kind.items()))
    if c.gold_agreement is not None:
        lines.append(f"  agreement with gold where one answer is right: {c.gold_agreement:.0%} "
                     f"of {c.gold_pairs} pairs")
    lines += [f"  {why}" for why in c.why]
    lines.append(f"  judge cost: {j.cost_basis}"
                 + (f" = ${j.cost_usd:,.4f}" if j.cost_usd is not None else ""))
    return "\n".join(lines)


def render_search(search: SearchResult) -> str:
    rows = [[c.stage, c.config.describe(), f"{c.score:.3f}",
             "<- best" if c.config == search.best else ""] for c in search.candidates]
    return (f"prompt chosen on {search.examples} validation examples ({search.metric}):\n"
            + table(rows, ["stage", "configuration", search.metric, ""]) + "\n")


def render_result(r: EvalResult) -> str:
    lines = [f"{r.model}: {r.name} on {r.n} {r.task} examples ({r.mode})"]
    if r.prompt:
        lines.append(f"  prompt: {PromptConfig(**r.prompt).describe()}")
    m = r.metrics
    kind = task_kind(r.task)
    if kind.labelled:
        lines.append(f"  accuracy {m['accuracy']:.3f}   macro-F1 {m['macro_f1']:.3f}   "
                     f"invalid {r.invalid}")
        rows = [[k, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}",
                 str(v["support"])] for k, v in m["per_class"].items()]
        lines.append(table(rows[:40], ["label", "precision", "recall", "F1", "support"]))
    elif kind.entities:
        lines.append(f"  entity precision {m['precision']:.3f}   recall {m['recall']:.3f}   "
                     f"F1 {m['f1']:.3f}   unparseable {r.invalid}")
        rows = [[k, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}",
                 str(v["support"])] for k, v in m["per_type"].items()]
        lines.append(table(rows, ["type", "precision", "recall", "F1", "support"]))
    else:
        loss = (f"loss {m['loss']:.4f}   perplexity {m['perplexity']:.2f}   " if "loss" in m
                else "")
        lines.append(f"  {loss}exact match {m['exact_match']:.3f}   token F1 "
                     f"{m['token_f1']:.3f}")
    lines.append(f"  latency {1000 * r.latency_s:.0f} ms/example, "
                 f"{r.prompt_tokens:.0f} prompt + {r.completion_tokens:.1f} answer tokens/request")
    lines += [f"  note: {note}" for note in r.notes]
    return "\n".join(lines)
