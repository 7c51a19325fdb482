"""`tunesmith eval --model M|RUN --data FILE|DIR [--shots K]`: score one model on a task."""

from __future__ import annotations

import argparse
from pathlib import Path

from tunesmith.cli import args as types
from tunesmith.cli.output import print_json, table
from tunesmith.data.splits import load_task_data
from tunesmith.evaluation.runner import EvalResult, evaluate
from tunesmith.modeling import DEFAULT_MODEL, load_for_inference, run_final_dir
from tunesmith.prompting.fewshot import select_shots


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a base or fine-tuned model on a task's test data",
                       description="Classification: accuracy, macro-F1, per-class P/R/F1, confusion "
                       "matrix. NER: entity P/R/F1. Chat: loss, exact match, token F1.")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="model spec, or a run folder (its final/) (default: %(default)s)")
    p.add_argument("--data", required=True, metavar="FILE|DIR",
                   help="a prepared folder (its test.jsonl) or a data file")
    p.add_argument("--shots", type=types.non_negative_int, default=0, help="few-shot examples from the train split")
    p.add_argument("--mode", choices=["score", "generate"], default="score",
                   help="classification: label log-likelihood (default) or generate-and-parse")
    p.add_argument("--max-examples", type=types.positive_int, help="evaluate only the first N examples")
    p.add_argument("--batch-size", type=types.positive_int, default=16,
                   help="examples per forward pass (default 16)")
    p.add_argument("--seed", type=types.seed, default=0, help="shot selection seed")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    td = load_task_data(args.data)
    test = td.test[: args.max_examples] if args.max_examples else td.test
    shots = select_shots(td.train, args.shots, td.spec.task, seed=args.seed)
    model, tokenizer = load_for_inference(args.model)
    fine_tuned = (Path(run_final_dir(args.model)) / "tunesmith.json").is_file()
    result = evaluate(model, tokenizer, test, td.spec, shots=shots, model_name=args.model,
                      kind="fine-tune" if fine_tuned else "prompt", mode=args.mode,
                      batch_size=args.batch_size)
    if args.json:
        print_json(result.to_dict(with_predictions=True))
    else:
        print(render_result(result))
    return 0


def render_result(r: EvalResult) -> str:
    lines = [f"{r.model}: {r.name} on {r.n} {r.task} examples ({r.mode})"]
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
        lines.append(f"  loss {m['loss']:.4f}   perplexity {m['perplexity']:.2f}   exact match "
                     f"{m['exact_match']:.3f}   token F1 {m['token_f1']:.3f}")
    lines.append(f"  latency {1000 * r.latency_s:.0f} ms/example, "
                 f"{r.prompt_tokens:.0f} prompt + {r.completion_tokens:.1f} answer tokens/request")
    return "\n".join(lines)
