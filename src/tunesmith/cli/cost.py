"""`tunesmith cost --data DIR|FILE`: what each approach costs, from measured tokens and speed."""

from __future__ import annotations

import argparse

from tunesmith.cli.compare import add_deployment_args, deployment_from_args
from tunesmith.cli.fields import add_fields, config_from_args
from tunesmith.cli.output import print_json, table
from tunesmith.studies.estimate import CostConfig, estimate

FIELDS = ["data", "model", "fine_tuned_run", "shots", "requests_per_month", "prices", "plot"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cost", help="price prompting and fine-tuning from measured tokens and speed")
    add_fields(p, CostConfig, FIELDS)
    add_deployment_args(p)
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    doc = estimate(config_from_args(CostConfig, args, FIELDS,
                                    deployment=deployment_from_args(args)))
    if args.json:
        print_json(doc)
        return 0
    volume = doc["requests_per_month"]
    print(table([[c["name"], c["where"], f"{c['one_off_usd']:,.4f}", f"{c['monthly_usd']:,.2f}",
                  "" if c["machines"] is None else str(c["machines"]),
                  f"{c['first_year_usd']:,.2f}"] for c in doc["approaches"]],
                ["approach", "where", "one-off $", f"$/month at {volume:,}", "machines",
                 "first year $"]))
    rates, training = doc["throughput"], doc["training"]
    print(f"\nself-hosted requests priced from their tokens at {rates['prefill_tokens_per_s']:,.0f} "
          f"prefill / {rates['decode_tokens_per_s']:,.0f} decode tokens/s (measured here)")
    print(f"self-hosted machine: {doc['machine']}")
    if training["epochs"] is None:
        print(f"tokens measured on {doc['sample']} test examples; training "
              f"{training['estimated_seconds'] / 60:.1f} min, {training['tokens']:,} tokens, "
              f"from {training['source']}")
    else:
        print(f"tokens measured on {doc['sample']} test examples (the fine-tuned row's on "
              f"{training['source']}); training estimated from a measured "
              f"{training['measured_tokens_per_s']:,.0f} tokens/s x {training['tokens']:,} "
              f"tokens ({training['epochs']} epochs)")
    for point in doc["crossings"]:
        print(f"first-year costs of {doc['best_prompt']} and the fine-tune cross at "
              f"~{point['requests_per_month']:,.0f} requests/month: above it "
              f"{point['cheaper_above']} costs less")
    print(f"prices as of {doc['prices_as_of']} ({doc['prices_source']})")
    return 0
