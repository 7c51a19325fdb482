"""`tunesmith compare --data DIR`: prompting vs fine-tuning, measured, priced, recommended."""

from __future__ import annotations

import argparse

from tunesmith.cli import args as types
from tunesmith.cli.output import print_json, table
from tunesmith.modeling import DEFAULT_MODEL
from tunesmith.report.compare import CompareConfig, Report, compare
from tunesmith.report.render import summary_rows


def _shots(value: str) -> list[int]:
    try:
        shots = [int(x) for x in value.split(",") if x.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError("--shots takes a list like 0,5") from e
    if not shots or any(k < 0 for k in shots):
        raise argparse.ArgumentTypeError("--shots takes non-negative counts like 0,5")
    return shots


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="prompting vs fine-tuning on the same test split, with a "
                       "report and a recommendation")
    p.add_argument("--data", required=True, metavar="DIR", help="a `data prepare` folder")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="model to prompt and to fine-tune (default: %(default)s)")
    p.add_argument("--shots", type=_shots, default=[0, 5], help="prompting baselines (default 0,5)")
    p.add_argument("--method", choices=["lora", "full"], default="lora",
                   help="fine-tuning method (default: lora)")
    p.add_argument("--epochs", type=types.auto_or(types.positive_int), default="auto",
                   help="training epochs, or auto (OpenAI's rule for the data size)")
    p.add_argument("--out", default="report", metavar="REPORT_DIR",
                   help="report folder: new, empty, or one compare wrote (default: ./report)")
    p.add_argument("--requests-per-month", type=types.non_negative_int, default=100_000,
                   help="volume the costs and the break-even are computed for (default 100,000)")
    p.add_argument("--prices", metavar="FILE", help="price table YAML (default: the shipped one)")
    p.add_argument("--max-train", type=types.positive_int, help="use only the first N training examples")
    p.add_argument("--max-test", type=types.positive_int, help="evaluate on the first N test examples")
    p.add_argument("--mode", choices=["score", "generate"], default="score",
                   help="classification: label log-likelihood (default) or generate-and-parse")
    p.add_argument("--seed", type=types.seed, default=0,
                   help="shot selection, training and bootstrap seed (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print report.json on stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    epochs = args.epochs
    report = compare(CompareConfig(
        data=args.data, out=args.out, model=args.model, shots=args.shots, method=args.method,
        requests_per_month=args.requests_per_month, prices=args.prices, max_train=args.max_train,
        max_test=args.max_test, epochs=epochs, mode=args.mode, seed=args.seed, quiet=args.quiet))
    if args.json:
        print_json(report.to_dict())
    else:
        print(render_summary(report))
    return 0


def render_summary(report: Report) -> str:
    header, rows = summary_rows(report)
    rec = report.recommendation
    lines = [(f"\n{report.task['task']} · {report.model} · {report.n_train} train / "
             f"{report.n_test} test examples"), table(rows, header), "",
             f"Recommendation: {rec.choice}", f"  {rec.reason}"]
    if report.break_even_requests:
        lines.append(f"  fine-tuning pays back against the best prompt after "
                     f"{report.break_even_requests:,.0f} requests")
    lines.append(f"\nReport: {report.out / 'report.html'} (also report.md, report.json)")
    return "\n".join(lines)
