"""Classification evaluation speed: label scoring (one pass over the cached prompt, labels as a
prefix tree) against batched greedy generation, in the same run, same model and precision.

Zero-shot, embedded SmolLM2-135M-Instruct, the first 200 test examples of
../shared/data/sst2 (2 labels) and ../shared/data/banking77 (77 labels), batch 16.

    python bench/eval_speed.py [--examples 200]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tunesmith.data.splits import load_task_data
from tunesmith.evaluation.runner import evaluate
from tunesmith.modeling import load_for_inference

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=200)
    args = ap.parse_args()
    model, tokenizer = load_for_inference("smollm2-135m-instruct")
    print(f"model dtype {next(model.parameters()).dtype}, batch 16, {args.examples} examples")
    rates = {}
    print(f"{'data set':10} {'labels':>6} {'mode':9} {'examples/s':>10} {'accuracy':>8} "
          f"{'invalid':>7}")
    for name in ("sst2", "banking77"):
        td = load_task_data(SHARED / name / "chat" / "test.jsonl")
        test = td.test[: args.examples]
        evaluate(model, tokenizer, test[:16], td.spec)  # warm-up: first calls pay oneDNN set-up
        for mode in ("score", "generate"):
            r = evaluate(model, tokenizer, test, td.spec, mode=mode, batch_size=16)
            rates[name, mode] = 1 / r.latency_s
            print(f"{name:10} {len(td.spec.labels):6} {mode:9} {1 / r.latency_s:10.1f} "
                  f"{r.metrics['accuracy']:8.3f} {r.invalid:7}")
    print(f"ratio_score_over_generate_banking77={rates['banking77', 'score'] / rates['banking77', 'generate']:.2f}")
    print(f"ratio_score_over_generate_sst2={rates['sst2', 'score'] / rates['sst2', 'generate']:.2f}")
    print(f"slowdown_banking77_over_sst2_scoring={rates['sst2', 'score'] / rates['banking77', 'score']:.2f}")


if __name__ == "__main__":
    main()
