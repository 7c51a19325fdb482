"""`tunesmith eval --model M|RUN|openai:NAME --data FILE|DIR [--shots K|auto]`: score one model
on a task, under a prompt configuration."""

from __future__ import annotations

import argparse
from pathlib import Path

from tunesmith.cli import args as types
from tunesmith.cli.output import print_json, table
from tunesmith.errors import UsageError
from tunesmith.evaluation.runner import EvalResult
from tunesmith.modeling import DEFAULT_MODEL, run_final_dir
from tunesmith.prompting.prompter import INSTRUCTIONS, SELECTIONS
from tunesmith.prompting.search import SEARCH_EXAMPLES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a base, fine-tuned or endpoint model on a task's "
                       "test data",
                       description="Classification: accuracy, macro-F1, per-class P/R/F1, confusion "
                       "matrix. NER: entity P/R/F1. Chat: loss, exact match, token F1. "
                       "openai:NAME evaluates a chat model behind any OpenAI-compatible endpoint "
                       "(OPENAI_BASE_URL, OPENAI_API_KEY).")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="model spec, a run folder (its final/), or openai:NAME (default: "
                   "%(default)s)")
    p.add_argument("--data", required=True, metavar="FILE|DIR",
                   help="a prepared folder (its test.jsonl) or a data file")
    add_prompt_args(p)
    p.add_argument("--mode", choices=["score", "generate"], default="score",
                   help="classification: label log-likelihood (default; endpoints: first-token "
                   "logprobs) or generate-and-parse")
    p.add_argument("--max-examples", type=types.positive_int,
                   help="evaluate only the first N examples")
    p.add_argument("--batch-size", type=types.positive_int, default=16,
                   help="examples per forward pass (default 16)")
    add_endpoint_args(p)
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(run=run)


def add_prompt_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shots", type=types.auto_or(types.non_negative_int), default=0,
                   help="few-shot examples from the train split, or auto: the prompt "
                   "(instruction, shots, selection, calibration) chosen on the validation split")
    p.add_argument("--shot-selection", choices=SELECTIONS, default="stratified",
                   help="stratified: one fixed, seeded set covering the labels; similar: the "
                   "training examples nearest to each input (TF-IDF)")
    p.add_argument("--instruction", choices=INSTRUCTIONS, default="own",
                   help="system message: the data set's own, one listing the labels, or none")
    p.add_argument("--calibrate", action="store_true",
                   help="contextual calibration of label scores (Zhao et al. 2021)")
    p.add_argument("--seed", type=types.seed, default=0, help="shot selection seed")
    p.add_argument("--search-examples", type=types.positive_int, default=SEARCH_EXAMPLES,
                   help="--shots auto: validation examples each prompt candidate is scored on "
                   "(default %(default)s)")


def add_endpoint_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("endpoint models (openai:NAME)")
    g.add_argument("--base-url", help="OpenAI-compatible API URL, up to /v1 (default: "
                   "$OPENAI_BASE_URL, else OpenAI's)")
    g.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the API "
                   "key (default: OPENAI_API_KEY); the key is never printed or stored")
    g.add_argument("--concurrency", type=types.int_range(1, 256), default=8,
                   help="requests in flight at once (default 8)")
    g.add_argument("--no-cache", dest="use_cache", action="store_false",
                   help="ask the endpoint again instead of reusing cached responses "
                   "($TUNESMITH_HOME/cache/endpoints)")


def run(args: argparse.Namespace) -> int:
    from tunesmith.data.splits import load_task_data, read_valid
    from tunesmith.evaluation.backends import open_backend
    from tunesmith.evaluation.runner import evaluate
    from tunesmith.prompting.prompter import PromptConfig
    from tunesmith.prompting.search import search_prompt

    td = load_task_data(args.data)
    test = td.test[: args.max_examples] if args.max_examples else td.test
    backend = open_backend(args.model, base_url=args.base_url, api_key_env=args.api_key_env,
                           concurrency=args.concurrency, use_cache=args.use_cache,
                           batch_size=args.batch_size, seed=args.seed)
    search = None
    if args.shots == "auto":
        val_path = td.folder / "validation.jsonl"
        if not val_path.is_file():
            raise UsageError(f"--shots auto chooses the prompt on {val_path}, which is missing; "
                             "prepare the data with --val, or give --shots a number.")
        search = search_prompt(backend, td.spec, td.train, read_valid(val_path).examples,
                               mode=args.mode, seed=args.seed,
                               max_examples=args.search_examples)
        prompt = search.best
    else:
        prompt = PromptConfig(args.shots, args.shot_selection, args.instruction, args.calibrate,
                              args.seed)
    fine_tuned = (Path(run_final_dir(args.model)) / "tunesmith.json").is_file()
    result = evaluate(backend, test, td.spec, prompt=prompt, train=td.train,
                      kind="fine-tune" if fine_tuned else "prompt", mode=args.mode,
                      name="best prompt" if search else "")
    client = getattr(backend, "client", None)
    traffic = None if client is None else {
        "endpoint": client.endpoint.base_url, "model": client.endpoint.model,
        "from_cache": client.cache.hits if client.cache else 0, "asked": client.received}
    if args.json:
        doc = result.to_dict(with_predictions=True)
        if search is not None:
            doc["prompt_search"] = search.to_dict()
        if traffic is not None:
            doc["requests"] = traffic
        print_json(doc)
    else:
        if search is not None:
            print(render_search(search))
        print(render_result(result))
        if traffic is not None:
            print(f"  requests: {traffic['asked']} to {traffic['endpoint']}, "
                  f"{traffic['from_cache']} answered from the cache")
    return 0


def render_search(search) -> str:
    rows = [[c.stage, c.config.describe(), f"{c.score:.3f}",
             "<- best" if c.config == search.best else ""] for c in search.candidates]
    return (f"prompt chosen on {search.examples} validation examples ({search.metric}):\n"
            + table(rows, ["stage", "configuration", search.metric, ""]) + "\n")


def render_result(r: EvalResult) -> str:
    lines = [f"{r.model}: {r.name} on {r.n} {r.task} examples ({r.mode})"]
    if r.prompt:
        from tunesmith.prompting.prompter import PromptConfig

        lines.append(f"  prompt: {PromptConfig(**r.prompt).describe()}")
    m = r.metrics
    if r.task == "classification":
        lines.append(f"  accuracy {m['accuracy']:.3f}   macro-F1 {m['macro_f1']:.3f}   "
                     f"invalid {r.invalid}")
        rows = [[k, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}",
                 str(v["support"])] for k, v in m["per_class"].items()]
        lines.append(table(rows[:40], ["label", "precision", "recall", "F1", "support"]))
    elif r.task == "ner":
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
