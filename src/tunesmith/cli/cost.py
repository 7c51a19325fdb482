"""`tunesmith cost --data DIR|FILE`: what each approach costs, from measured tokens and speed."""

from __future__ import annotations

import argparse

from tunesmith.cli.fields import add_fields, config_from_args
from tunesmith.cli.output import print_json, table
from tunesmith.studies.estimate import CostConfig, estimate

FIELDS = ["data", "model", "shots", "requests_per_month", "prices", "plot"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cost", help="price prompting and fine-tuning from measured tokens and speed")
    add_fields(p, CostConfig, FIELDS)
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    doc = estimate(config_from_args(CostConfig, args, FIELDS))
    if args.json:
        print_json(doc)
        return 0
    print(table([[c["name"], c["where"], f"{c['one_off_usd']:,.4f}",
                  f"{c['per_1k_requests_usd']:,.4f}", f"{c['first_year_usd']:,.2f}"]
                 for c in doc["approaches"]],
                ["approach", "where", "one-off $", "$/1k requests", "first year $"]))
    rates, training = doc["throughput"], doc["training"]
    print(f"\nself-hosted requests priced from their tokens at {rates['prefill_tokens_per_s']:,.0f} "
          f"prefill / {rates['decode_tokens_per_s']:,.0f} decode tokens/s (measured here)")
    print(f"tokens measured on {doc['sample']} test examples; training estimated from a measured "
          f"{training['measured_tokens_per_s']:,.0f} tokens/s x {training['tokens']:,} tokens "
          f"({training['epochs']} epochs)")
    payback = doc["break_even_requests"]
    if payback:
        print(f"fine-tuning (self-hosted) pays back against {doc['best_prompt']} after "
              f"{payback:,.0f} requests ({payback / doc['requests_per_month']:.1f} months at "
              f"{doc['requests_per_month']:,}/month)")
    print(f"prices as of {doc['prices_as_of']} ({doc['prices_source']})")
    return 0
