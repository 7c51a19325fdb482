"""`tunesmith cost --data DIR|FILE`: what each approach costs, from measured tokens and speed."""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

from tunesmith.cli import args as types
from tunesmith.cli.output import print_json, table
from tunesmith.config import TrainConfig
from tunesmith.cost import break_even, plot_costs
from tunesmith.data.splits import load_task_data
from tunesmith.evaluation.backends import LocalBackend
from tunesmith.evaluation.runner import evaluate
from tunesmith.evaluation.throughput import measure
from tunesmith.hparams import auto_batch_size, auto_epochs, billed_tokens
from tunesmith.modeling import DEFAULT_MODEL, load_for_inference
from tunesmith.outputs import check_not_input, check_parent
from tunesmith.pricing import load_prices
from tunesmith.prompting.prompter import PromptConfig
from tunesmith.report.costs import price_approaches

SAMPLE = 32
"""Test examples timed per approach."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cost", help="price prompting and fine-tuning from measured tokens and speed")
    p.add_argument("--data", required=True, metavar="DIR|FILE")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--shots", type=types.non_negative_int, default=5, help="few-shot examples in the prompt row")
    p.add_argument("--requests-per-month", type=types.non_negative_int, default=100_000)
    p.add_argument("--prices", metavar="FILE")
    p.add_argument("--plot", metavar="PNG", help="write the cost-vs-requests plot here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    if args.plot:
        check_parent(args.plot, "--plot")
        check_not_input([args.plot], [args.data], "--plot")
    prices = load_prices(args.prices)
    hardware = prices.hardware(torch.cuda.is_available())
    td = load_task_data(args.data)
    sample = td.test[:SAMPLE]
    model, tokenizer = load_for_inference(args.model)
    rows = {}
    backend = LocalBackend(model, tokenizer, args.model)
    for k in (0, args.shots):
        rows[f"{k}-shot" if k else "zero-shot"] = evaluate(backend, sample, td.spec,
                                                           prompt=PromptConfig(k), train=td.train)
    rates = measure(model)
    del model, backend
    train = td.train or td.test
    tok_per_s = _training_speed(args.model, train, td.folder)
    from tunesmith.data.tokens import count_tokens

    counts = count_tokens([e.with_system(td.spec.system) for e in train], tokenizer)
    epochs = auto_epochs(len(train))
    billed = billed_tokens(counts.total, epochs)
    train_seconds = sum(counts.total) * epochs / tok_per_s
    # A fine-tuned model answers from the zero-shot prompt, at the base model's speed.
    fine = dataclasses.replace(rows["zero-shot"], name="fine-tuned (lora)", kind="fine-tune")
    results = [*rows.values(), fine]
    self_costs, reference = price_approaches(results, prices, hardware, {args.model: rates},
                                             training={fine.name: (train_seconds, billed)})
    costs = list(self_costs.values()) + [
        dataclasses.replace(c, name=f"{c.name} (OpenAI)") for c in reference.values()]
    volume = 12 * args.requests_per_month
    best_prompt = min(costs[:len(rows)], key=lambda c: c.per_1k_requests_usd)
    payback = break_even(best_prompt, self_costs[fine.name])
    if args.plot:
        plot_costs(costs, Path(args.plot), marker=args.requests_per_month)
    doc = {"approaches": [c.to_dict() | {"first_year_usd": c.total(volume)} for c in costs],
           "training": {"examples": len(train), "epochs": epochs, "billed_tokens": billed,
                        "measured_tokens_per_s": tok_per_s, "estimated_seconds": train_seconds},
           "throughput": rates.to_dict(),
           "break_even_requests": payback, "requests_per_month": args.requests_per_month,
           "prices_as_of": prices.as_of}
    if args.json:
        print_json(doc)
        return 0
    print(table([[c.name, c.where, f"{c.one_off_usd:,.4f}", f"{c.per_1k_requests_usd:,.4f}",
                  f"{c.total(volume):,.2f}"] for c in costs],
                ["approach", "where", "one-off $", "$/1k requests", "first year $"]))
    print(f"\nself-hosted requests priced from their tokens at {rates.prefill_tokens_per_s:,.0f} "
          f"prefill / {rates.decode_tokens_per_s:,.0f} decode tokens/s (measured here)")
    print(f"tokens measured on {len(sample)} test examples; training estimated from a measured "
          f"{tok_per_s:,.0f} tokens/s x {sum(counts.total) * epochs:,} tokens ({epochs} epochs)")
    if payback:
        print(f"fine-tuning (self-hosted) pays back against {best_prompt.name} after "
              f"{payback:,.0f} requests ({payback / args.requests_per_month:.1f} months at "
              f"{args.requests_per_month:,}/month)")
    print(f"prices as of {prices.as_of} ({prices.source})")
    return 0


def _training_speed(model: str, examples, folder: Path) -> float:
    """Real tokens/s of LoRA training here, measured on a few steps (the first one skipped)."""
    from tunesmith.training import train

    batch = auto_batch_size(len(examples))
    subset = examples[: batch * 4]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.jsonl"
        path.write_text("".join(json.dumps(e.to_chat()) + "\n" for e in subset))
        train(TrainConfig(train_file=str(path), out=str(Path(tmp) / "run"), model=model,
                          epochs=1, batch_size=batch, quiet=True))
        records = [json.loads(x) for x in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()
                   if x]
    steps = [r for r in records if "tokens_per_s" in r][1:] or \
        [r for r in records if "tokens_per_s" in r]
    return sum(r["tokens"] for r in steps) / sum(r["tokens"] / r["tokens_per_s"] for r in steps)
