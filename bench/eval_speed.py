"""Classification evaluation speed: label scoring (labels as a prefix tree searched over the
cached prompt) against batched greedy generation, in the same run, same model and precision.

The embedded SmolLM2-135M-Instruct, the first 200 test examples of ../shared/data/sst2
(2 labels) and ../shared/data/banking77 (77 labels), batch 16, zero-shot and K-shot (shots from
the training split). Also prints how many label-tree nodes exhaustive scoring would run per
example, the work the best-first search can skip only when the model is confident.

    python bench/eval_speed.py [--examples 200] [--shots 0,5] [--finetuned RUN]

`--finetuned RUN` adds rows for a fine-tuned model on Banking77 (for example the run folder
`tunesmith compare` wrote), prompted with the instruction it was trained with: a model that knows
the labels lets the best-first search skip most of the tree.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tunesmith.data.splits import load_task_data
from tunesmith.evaluation.runner import evaluate
from tunesmith.evaluation.scoring import LabelTree, answer_tokens
from tunesmith.modeling import load_for_inference
from tunesmith.prompting.fewshot import select_shots

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--shots", default="0,5")
    ap.add_argument("--finetuned", default=None, help="a Banking77 run folder to time as well")
    args = ap.parse_args()
    model, tokenizer = load_for_inference("smollm2-135m-instruct")
    print(f"model dtype {next(model.parameters()).dtype}, batch 16, {args.examples} examples")
    rates = {}
    print(f"{'data set':10} {'labels':>6} {'tree':>5} {'shots':>5} {'mode':9} {'examples/s':>10} "
          f"{'accuracy':>8} {'invalid':>7}")
    for name in ("sst2", "banking77"):
        td = load_task_data(SHARED / name / "chat" / "test.jsonl")
        test = td.test[: args.examples]
        tree = LabelTree.build([answer_tokens(tokenizer, label) for label in td.spec.labels])
        internal = sum(1 for c in tree.children if c)
        evaluate(model, tokenizer, test[:16], td.spec)  # warm-up: first calls pay oneDNN set-up
        for k in map(int, args.shots.split(",")):
            shots = select_shots(td.train, k, td.spec.task) if k else []
            for mode in ("score", "generate"):
                r = evaluate(model, tokenizer, test, td.spec, shots=shots, mode=mode,
                             batch_size=16)
                rates[name, k, mode] = 1 / r.latency_s
                print(f"{name:10} {len(td.spec.labels):6} {internal:5} {k:5} {mode:9} "
                      f"{1 / r.latency_s:10.1f} {r.metrics['accuracy']:8.3f} {r.invalid:7}",
                      flush=True)
    if args.finetuned:
        import json

        from tunesmith.data.taskfile import TaskSpec

        ft_model, ft_tok = load_for_inference(args.finetuned)
        meta = json.loads((Path(args.finetuned) / "final" / "tunesmith.json").read_text())
        spec = TaskSpec(**meta["task"])
        test = load_task_data(SHARED / "banking77" / "chat" / "test.jsonl").test[: args.examples]
        evaluate(ft_model, ft_tok, test[:16], spec)
        for mode in ("score", "generate"):
            r = evaluate(ft_model, ft_tok, test, spec, mode=mode, batch_size=16)
            rates["finetuned", mode] = 1 / r.latency_s
            print(f"{'banking77 (fine-tuned)':22} {mode:9} {1 / r.latency_s:10.1f} "
                  f"{r.metrics['accuracy']:8.3f} {r.invalid:7}", flush=True)
        print(f"ratio_score_over_generate_banking77_finetuned="
              f"{rates['finetuned', 'score'] / rates['finetuned', 'generate']:.2f}")
    for k in map(int, args.shots.split(",")):
        for name in ("banking77", "sst2"):
            ratio = rates[name, k, "score"] / rates[name, k, "generate"]
            print(f"ratio_score_over_generate_{name}_{k}shot={ratio:.2f}")
        slowdown = rates["sst2", k, "score"] / rates["banking77", k, "score"]
        print(f"slowdown_banking77_over_sst2_scoring_{k}shot={slowdown:.2f}")


if __name__ == "__main__":
    main()
