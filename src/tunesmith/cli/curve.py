"""`tunesmith curve --data DIR`: the metric against the number of training examples, and how
many examples a target needs."""

from __future__ import annotations

import argparse
import sys

from tunesmith.cli.eval import add_endpoint_args, add_judge_args, judge_from_args
from tunesmith.cli.fields import add_fields, config_from_args
from tunesmith.cli.output import print_json, table
from tunesmith.config import METHOD_HELP, EndpointOptions
from tunesmith.report.render import curve_sentences
from tunesmith.studies.curve import CurveConfig, run_curve

FIELDS = ["data", "sizes", "target", "model", "method", "shots", "max_test", "budget_minutes",
          "out", "seed", "quiet"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "curve", help="measure how the metric grows with training data",
        description="Fine-tune on nested, stratified subsets of the training split (one run "
        "per size, the same hyper-parameter rule), evaluate each on the test split with a 95%% "
        "bootstrap interval, fit the learning curve, and say how many examples --target needs "
        "and from how many fine-tuning beats prompting. Writes curve.json and curve.png. "
        f"Approaches (--method): {METHOD_HELP}.")
    add_fields(p, CurveConfig, FIELDS)
    add_judge_args(p)
    add_endpoint_args(p)
    p.add_argument("--json", action="store_true", help="print curve.json on stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    def say(message: str) -> None:
        if not (args.quiet or args.json):
            print(message, file=sys.stderr, flush=True)

    endpoint = config_from_args(EndpointOptions, args, list(EndpointOptions.ENDPOINT_FIELDS))
    doc = run_curve(config_from_args(CurveConfig, args, FIELDS, judging=judge_from_args(args),
                                     endpoint=endpoint), say=say)
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
    judge = doc.get("judge")
    if judge:
        lines.append(f"judge {judge['judge']}: " + ("trusted; the curve is its win rate"
                                                    if judge["trusted"] else judge["note"]))
    lines.append(f"\nWrote {doc['out']}/curve.json and curve.png")
    return "\n".join(lines)
