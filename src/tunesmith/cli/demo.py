"""`tunesmith demo`: the whole decision on the sample data set shipped inside the package.

Checks and prepares the support-ticket sample (500 messages of a fictional solar company, 8
company-specific queues), then runs `compare` with the embedded model: zero-shot, 5-shot and a
LoRA fine-tune, evaluated on the same test split, priced, with a recommendation.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tunesmith.cli.compare import render_summary
from tunesmith.data.check import check_file
from tunesmith.data.prepare import prepare
from tunesmith.modeling import DEFAULT_MODEL, load_tokenizer
from tunesmith.samples import SUPPORT_TICKETS, SUPPORT_TICKETS_LABELS
from tunesmith.studies.compare import CompareConfig, compare
from tunesmith.studies.estimate import estimate_compare


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole decision on tunesmith's bundled sample data")
    p.add_argument("--out", default="demo", metavar="DIR", help="output folder (default: ./demo)")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def sample_system() -> str:
    """The routing instruction: the company and its queue names. (With each queue's one-line
    definition the instruction grows to ~500 tokens, and every training step and every request
    pays for them: fine-tuning on a CPU would take 40 minutes instead of 6.)"""
    queues = json.loads(SUPPORT_TICKETS_LABELS.read_text())
    return (f"Route each customer message for {queues['company']} to one support queue: "
            + ", ".join(queues["labels"]) + ". Answer with the queue name only.")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    tokenizer = load_tokenizer(args.model)
    report = check_file(SUPPORT_TICKETS, tokenizer=tokenizer, model=args.model)
    print(f"1/3 data check: {report.examples} valid examples, {len(report.labels)} labels, "
          f"{len(report.errors)} errors, {len(report.warnings)} warnings")
    if not report.ok:
        return 1
    prepared = prepare(SUPPORT_TICKETS, "classification", out / "data", system=sample_system())
    print("2/3 data prepare: " + ", ".join(f"{k} {v}" for k, v in prepared.counts.items())
          + f" -> {out / 'data'}")
    plan = estimate_compare(out / "data", args.model)
    print(f"3/3 compare: zero-shot, 5-shot, the best prompt and a LoRA fine-tune of {args.model}: "
          f"about {plan.minutes:.0f} min here (training ~{plan.training_minutes:.1f} min at a "
          f"measured {plan.train_tokens_per_s:,.0f} tokens/s, prompting "
          f"~{plan.prompting_minutes:.1f} min at {plan.scored_per_s:.1f} examples/s; probe "
          f"{plan.probe_seconds:.0f} s)", flush=True)
    started = time.perf_counter()
    result = compare(CompareConfig(data=str(out / "data"), out=str(out / "report"),
                                   model=args.model, quiet=args.quiet))
    print(render_summary(result))
    print(f"compare took {(time.perf_counter() - started) / 60:.1f} min (estimated "
          f"{plan.minutes:.1f})")
    return 0
