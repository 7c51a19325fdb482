"""`tunesmith compare --data DIR`: prompting vs fine-tuning, measured, priced, recommended."""

from __future__ import annotations

import argparse

from tunesmith.cli import args as types
from tunesmith.cli.eval import add_endpoint_args
from tunesmith.cli.output import print_json, table
from tunesmith.modeling import DEFAULT_MODEL
from tunesmith.prompting.search import SEARCH_EXAMPLES
from tunesmith.report.compare import CompareConfig, compare
from tunesmith.report.document import Report
from tunesmith.report.render import payback_rows, summary_rows


def _shots(value: str) -> list[int | str]:
    """`0,5,auto` -> [0, 5, "auto"]."""
    items = [x.strip() for x in value.split(",") if x.strip()]
    try:
        shots = [x if x == "auto" else int(x) for x in items]
    except ValueError as e:
        raise argparse.ArgumentTypeError("--shots takes a list like 0,5,auto") from e
    if not shots or any(k != "auto" and k < 0 for k in shots):
        raise argparse.ArgumentTypeError("--shots takes non-negative counts and auto, like 0,5,auto")
    return shots


def _methods(value: str) -> list[str]:
    from tunesmith.report.compare import METHODS

    items = [x.strip() for x in value.split(",") if x.strip()]
    bad = [x for x in items if x not in METHODS]
    if not items or bad:
        raise argparse.ArgumentTypeError(f"--method takes a list of {', '.join(METHODS)}")
    return list(dict.fromkeys(items))


def _curve_sizes(value: str) -> list[int] | None:
    from tunesmith.cli.curve import _sizes

    return _sizes(value)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="prompting vs fine-tuning on the same test split, with a "
                       "report and a recommendation",
                       description="Prompt the --prompt-model(s) (default: --model; openai:NAME "
                       "for a model behind an OpenAI-compatible endpoint), fine-tune --model, "
                       "evaluate all on the same test split, price them and recommend one.")
    p.add_argument("--data", required=True, metavar="DIR", help="a `data prepare` folder")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="the model to fine-tune (and to prompt, without --prompt-model) "
                   "(default: %(default)s)")
    p.add_argument("--prompt-model", action="append", dest="prompt_models", metavar="SPEC",
                   help="a model to prompt instead, repeatable: a model spec or openai:NAME "
                   "(e.g. openai:gpt-4.1-mini)")
    p.add_argument("--shots", type=_shots, default=[0, 5, "auto"],
                   help="prompting rows per prompted model: a k-shot row per number; auto adds "
                   "`best prompt`, the instruction/shots/selection/calibration chosen on the "
                   "validation split (default 0,5,auto)")
    p.add_argument("--method", type=_methods, default=["lora"], dest="methods",
                   metavar="METHODS", help="fine-tuning approaches, one row each, comma-separated: "
                   "lora, full (the answer as text), lora-head, full-head (a classification or "
                   "token-classification head) (default: lora)")
    p.add_argument("--epochs", type=types.auto_or(types.positive_int), default="auto",
                   help="training epochs, or auto (OpenAI's rule for the data size)")
    p.add_argument("--out", default="report", metavar="REPORT_DIR",
                   help="report folder: new, empty, or one compare wrote (default: ./report)")
    p.add_argument("--requests-per-month", type=types.non_negative_int, default=100_000,
                   help="volume the costs and the break-even are computed for (default 100,000)")
    p.add_argument("--prices", metavar="FILE", help="price table YAML (default: the shipped one)")
    p.add_argument("--max-train", type=types.positive_int,
                   help="use only the first N training examples")
    p.add_argument("--max-test", type=types.positive_int,
                   help="evaluate on the first N test examples")
    p.add_argument("--mode", choices=["score", "generate"], default="score",
                   help="classification: label log-likelihood (default) or generate-and-parse")
    p.add_argument("--seed", type=types.seed, default=0,
                   help="shot selection, training and bootstrap seed (default 0)")
    p.add_argument("--search-examples", type=types.positive_int, default=SEARCH_EXAMPLES,
                   help="auto: validation examples each prompt candidate is scored on "
                   "(default %(default)s)")
    p.add_argument("--tune", action="store_true",
                   help="choose each fine-tune's learning rate and epochs on the validation "
                   "split (as train --tune); every trial's time counts as training time")
    p.add_argument("--tune-budget-minutes", type=types.positive_float, default=60.0,
                   help="--tune: wall-clock budget per fine-tuning approach (default 60)")
    p.add_argument("--no-audit", dest="audit", action="store_false",
                   help="skip the data audit of the training and test splits (seconds with the "
                   "TF-IDF probe; `tunesmith data audit` runs the full one)")
    p.add_argument("--curve", action="store_true",
                   help="also measure the learning curve of the first --method (as `tunesmith "
                   "curve`, one fine-tune per size) into REPORT_DIR/curve and the report")
    p.add_argument("--curve-sizes", type=_curve_sizes, default=None, metavar="SIZES",
                   help="--curve: training-set sizes, or auto (default auto)")
    p.add_argument("--target", type=types.fraction,
                   help="--curve: the metric value to estimate the examples needed for")
    add_endpoint_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print report.json on stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    report = compare(CompareConfig(
        data=args.data, out=args.out, model=args.model, prompt_models=args.prompt_models or [],
        shots=args.shots, methods=args.methods, requests_per_month=args.requests_per_month,
        prices=args.prices, max_train=args.max_train, max_test=args.max_test, epochs=args.epochs,
        mode=args.mode, seed=args.seed, quiet=args.quiet, base_url=args.base_url,
        api_key_env=args.api_key_env, concurrency=args.concurrency, use_cache=args.use_cache,
        search_examples=args.search_examples, tune=args.tune,
        tune_budget_minutes=args.tune_budget_minutes, audit=args.audit, curve=args.curve,
        curve_sizes=args.curve_sizes, target=args.target))
    if args.json:
        print_json(report.to_dict())
    else:
        print(render_summary(report))
    return 0


def render_summary(report: Report) -> str:
    header, rows = summary_rows(report)
    rec = report.recommendation
    lines = [(f"\n{report.task['task']} · fine-tuned {report.model} · prompted "
              f"{', '.join(report.prompt_models)} · {report.n_train} train / {report.n_test} "
              "test examples"), table(rows, header), "",
             f"Recommendation: {rec.choice}", f"  {rec.reason}"]
    fines = [f.name for f in report.fine_tuned_rows]
    for name, _, *whens in payback_rows(report):
        for fine, when in zip(fines, whens):
            lines.append(f"  {fine} against {name}: pays back {when}")
    for model, search in report.prompt_searches.items():
        lines.append(f"  best prompt for {model} (chosen on {search['examples']} validation "
                     f"examples): {search['best_description']}")
    lines.append(f"\nReport: {report.out / 'report.html'} (also report.md, report.json)")
    return "\n".join(lines)
