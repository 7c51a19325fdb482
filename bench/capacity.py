"""Measure a model's serving capacity on this machine and write a capacity file, so that
`compare` / `cost` run elsewhere can price self-hosted rows on this machine type:

    python bench/capacity.py --model smollm2-135m-instruct --machine gpu-l4 --out l4.json
    tunesmith compare ... --machine gpu-l4 --capacity l4.json

The rates are those every self-hosted price is computed from (`evaluation/throughput.py`:
prompt tokens read per second in one batched pass, answer tokens written per second with the
KV cache, at the serving batch), the median of 3 rounds after a warm-up. Prints what it
measured and the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tunesmith.evaluation.throughput import measure, save_capacity, this_machine
from tunesmith.modeling import load_for_inference
from tunesmith.pricing import load_prices


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="the model (the name compare/cost are given)")
    p.add_argument("--machine", required=True,
                   help="the price table's self_hosted entry this machine is an instance of")
    p.add_argument("--out", required=True, help="the capacity file to write (JSON)")
    p.add_argument("--prices", help="price table (default: the shipped one)")
    p.add_argument("--batch", type=int, default=16, help="the serving batch (default 16)")
    args = p.parse_args()
    here = this_machine()
    entry = load_prices(args.prices).self_hosted.get(args.machine)
    if entry is None:
        print(f"error: --machine {args.machine} is not a self_hosted entry of the price table",
              file=sys.stderr)
        return 2
    if entry.device and not entry.matches(here):
        print(f"error: this machine ({here.describe()}) is not a {args.machine} "
              f"({entry.description}); run this there", file=sys.stderr)
        return 2
    model, _ = load_for_inference(args.model)
    rates = measure(model, batch=args.batch)
    save_capacity(Path(args.out), rates, args.model, args.machine, here)
    print(json.dumps({"machine": args.machine, "measured_on": here.describe(),
                      "model": args.model, **rates.to_dict()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
