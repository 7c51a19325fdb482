"""`tunesmith demo`: the main job on the sample data set shipped inside the package.

For now it runs the data stage (check, then prepare) on the support-ticket sample; the
prompt-vs-fine-tune comparison joins it when `compare` exists.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tunesmith.cli.data import render_check
from tunesmith.data.check import check_file
from tunesmith.data.prepare import prepare
from tunesmith.modeling import DEFAULT_MODEL, load_tokenizer
from tunesmith.pricing import load_prices
from tunesmith.samples import SUPPORT_TICKETS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run tunesmith on its bundled sample data set")
    p.add_argument("--out", default="demo", metavar="DIR", help="output folder (default: ./demo)")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    tokenizer = load_tokenizer(args.model)
    report = check_file(SUPPORT_TICKETS, tokenizer=tokenizer, model=args.model,
                        prices=load_prices())
    print(render_check(report))
    if not report.ok:
        return 1
    out = Path(args.out) / "data"
    result = prepare(SUPPORT_TICKETS, "classification", out)
    print(f"\nPrepared {sum(result.counts.values())} examples into {out}: "
          + ", ".join(f"{k} {v}" for k, v in result.counts.items()))
    return 0
