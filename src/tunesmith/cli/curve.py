"""`tunesmith curve --data DIR`: the metric against the number of training examples, and how
many examples a target needs."""

from __future__ import annotations

import argparse
import sys

from tunesmith.cli import args as types
from tunesmith.cli.output import print_json, table
from tunesmith.curve.run import CurveConfig, run_curve
from tunesmith.modeling import DEFAULT_MODEL


def _sizes(value: str) -> list[int] | None:
    if value == "auto":
        return None
    try:
        sizes = [int(x) for x in value.split(",") if x.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError("--sizes takes auto or a list like 50,100,200,400") from e
    if not sizes or any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError("--sizes takes positive counts, like 50,100,200,400")
    return sizes


def _counts(value: str) -> list[int]:
    try:
        shots = [int(x) for x in value.split(",") if x.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError("--shots takes a list like 0,5") from e
    if any(s < 0 for s in shots):
        raise argparse.ArgumentTypeError("--shots takes non-negative counts, like 0,5")
    return shots


def add_parser(sub: argparse._SubParsersAction) -> None:
    from tunesmith.report.compare import METHODS

    p = sub.add_parser(
        "curve", help="measure how the metric grows with training data",
        description="Fine-tune on nested, stratified subsets of the training split (one run "
        "per size, the same hyper-parameter rule), evaluate each on the test split with a 95%% "
        "bootstrap interval, fit the learning curve, and say how many examples --target needs "
        "and from how many fine-tuning beats prompting. Writes curve.json and curve.png.")
    p.add_argument("--data", required=True, metavar="DIR", help="a `data prepare` folder")
    p.add_argument("--sizes", type=_sizes, default=None,
                   help="training-set sizes, or auto: halvings of the training split down to 50 "
                   "(default auto)")
    p.add_argument("--target", type=types.fraction,
                   help="a metric value (0-1) to estimate the examples needed for")
    p.add_argument("--model", default=DEFAULT_MODEL, help="model to fine-tune (default: %(default)s)")
    p.add_argument("--method", choices=METHODS, default="lora",
                   help="fine-tuning approach (default: lora)")
    p.add_argument("--shots", type=_counts, default=[0, 5],
                   help="prompting bands: k-shot rows of --model on the test split (default 0,5)")
    p.add_argument("--max-test", type=types.positive_int,
                   help="evaluate on the first N test examples")
    p.add_argument("--budget-minutes", type=types.positive_float,
                   help="stop before a size that would pass this wall-clock budget")
    p.add_argument("--out", default="curve", metavar="DIR",
                   help="output folder: new, empty, or one curve wrote (default: ./curve)")
    p.add_argument("--seed", type=types.seed, default=0,
                   help="subset, training and bootstrap seed (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--json", action="store_true", help="print curve.json on stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    def say(message: str) -> None:
        if not (args.quiet or args.json):
            print(message, file=sys.stderr, flush=True)

    doc = run_curve(CurveConfig(
        data=args.data, out=args.out, model=args.model, method=args.method, sizes=args.sizes,
        target=args.target, shots=args.shots, max_test=args.max_test,
        budget_minutes=args.budget_minutes, seed=args.seed, quiet=args.quiet), say=say)
    if args.json:
        print_json(doc)
    else:
        print(render_curve(doc))
    return 0


def render_curve(doc: dict) -> str:
    rows = [[f"{p['n']:,}", f"{p['metric']:.3f}", f"[{p['low']:.3f}, {p['high']:.3f}]",
             f"{p['train_seconds'] / 60:.1f}"] for p in doc["points"]]
    lines = [(f"\n{doc['metric']} on the test split, fine-tuned ({doc['method']}) "
             f"{doc['model']}:"), table(rows, ["examples", doc["metric"], "95% CI", "train min"])]
    for band in doc["prompting"]:
        lines.append(f"  prompting {band['name']}: {band['metric']:.3f} "
                     f"[{band['low']:.3f}, {band['high']:.3f}]")
    lines += curve_sentences(doc)
    lines.append(f"\nWrote {doc['out']}/curve.json and curve.png")
    return "\n".join(lines)


def curve_sentences(doc: dict) -> list[str]:
    """The claims and their backtest, in words (also used by the compare report)."""
    out = []
    if doc.get("fit"):
        fit = doc["fit"]
        out.append(f"Fit: {fit['form']} ({fit['chosen_by']}), RMSE {fit['rmse']:.4f} on the "
                   "points")
    if doc.get("examples_needed"):
        out.append(doc["examples_needed"]["text"])
    if doc.get("beats_best_prompt_from"):
        out.append(doc["beats_best_prompt_from"]["text"])
    bt = doc.get("backtest")
    if bt:
        out.append(f"Backtest: fitted without the {bt['n']:,}-example point, the curve predicted "
                   f"{bt['predicted']:.3f} there; measured {bt['measured']:.3f} (error "
                   f"{bt['error']:+.3f})")
    elif doc.get("backtest_note"):
        out.append(f"Backtest: {doc['backtest_note']}")
    if doc.get("skipped_sizes"):
        out.append("Not measured (budget): " + ", ".join(f"{n:,}" for n in doc["skipped_sizes"]))
    return out
