"""Cost as deployed at three volumes, with the crossing points: `compare` on a data set, then
every row at 1,000, 100,000 and 10M requests a month, beside hosted prompting rows priced from
the shipped table (OpenAI's gpt-4.1-mini and gpt-4o-mini, the cached-input rule included).

    python bench/cost_volumes.py --data DEMO/data --train 0 --validation 0 --test 0  # the demo's
    python bench/cost_volumes.py --data ../shared/data/sst2/chat --train 400 --test 200

The hosted rows are priced, not evaluated: their tokens are the local model's measured prompt
tokens for the same prompt (SmolLM2's tokenizer; OpenAI's o200k tokenizer counts English text
within a few percent of it) with the answer a label of 2 tokens. Their quality is not measured
(no OpenAI endpoint answers here). Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from tunesmith.cost import crossings, endpoint
from tunesmith.pricing import load_prices
from tunesmith.studies.compare import CompareConfig, compare

REPO = Path(__file__).resolve().parents[1]
VOLUMES = (1_000, 100_000, 10_000_000)
HOSTED = ("gpt-4.1-mini", "gpt-4o-mini")


def subset(source: Path, work: Path, sizes: dict[str, int]) -> Path:
    data = work / "data"
    data.mkdir()
    for split, n in sizes.items():
        lines = (source / f"{split}.jsonl").read_text().splitlines()
        lines = lines[:n] if n else lines
        (data / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    for extra in ("task.yaml", "task.json"):  # a prepared folder's task description
        if (source / extra).is_file():
            (data / extra).write_text((source / extra).read_text())
    return data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True,
                    help="a chat-format folder (train/validation/test.jsonl, e.g. the demo's "
                         "DEMO/data)")
    ap.add_argument("--train", type=int, default=400, help="first N of each split; 0: all")
    ap.add_argument("--validation", type=int, default=100)
    ap.add_argument("--test", type=int, default=200)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-cost-"))
    data = subset(Path(args.data), work, {"train": args.train, "validation": args.validation,
                                          "test": args.test})
    report = compare(CompareConfig(data=str(data), out=str(work / "report"), quiet=True,
                                   audit=False))
    prices = load_prices()
    costs = dict(report.costs)
    for name in HOSTED:  # the best prompt's requests, sent to a hosted model
        best = report.best_prompt
        costs[f"{name} · {best.name}"] = endpoint(
            f"{name} · {best.name}", f"OpenAI {name} (priced, not evaluated)", best.prompt_tokens,
            2.0, prices.chat_price(name), best.shared_prompt_tokens)
    fine = report.fine_tuned.name
    print(f"data: {args.data}; {report.n_train} train / "
          f"{report.n_test} test; prices as of {prices.as_of}; machine {report.hardware}")
    print(f"{'approach':<34} {'score':>6} " + " ".join(f"{f'$/mo @ {v:,}':>17}" for v in VOLUMES)
          + "   one-off $")
    scores = {r.name: r.score for r in report.results}
    for name, c in costs.items():
        score = f"{scores[name]:.3f}" if name in scores else "  n/a"
        print(f"{name:<34} {score:>6} "
              + " ".join(f"{c.monthly(v):>17,.2f}" for v in VOLUMES)
              + f"   {c.one_off_usd:,.4f}")
    print(f"\ncrossings with {fine} (first year: one-off + 12 months as deployed):")
    for name, c in costs.items():
        if name == fine or c.kind != "prompt":
            continue
        points = crossings(c, costs[fine])
        words = "; ".join(f"~{p['requests_per_month']:,.0f}/month, above it "
                          f"{p['cheaper_above']} costs less" for p in points) or \
            "none between 1,000 and 100M requests/month"
        print(f"  {name}: {words}")
    print(f"\nrecommendation at {report.requests_per_month:,}/month: "
          f"{report.recommendation.choice}")
    print(json.dumps({"best_prompt": report.best_prompt.name,
                      "shared_prompt_tokens": report.best_prompt.shared_prompt_tokens,
                      "prompt_tokens": report.best_prompt.prompt_tokens}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
