"""Classification evaluation speed: label scoring (labels as a prefix tree searched over the
cached prompt) against batched greedy generation, in the same run, same model and precision.

The embedded SmolLM2-135M-Instruct, the first 200 test examples of ../shared/data/sst2
(2 labels) and ../shared/data/banking77 (77 labels), batch 16, zero-shot and K-shot (shots from
the training split).

For each scoring row it also prints the work of the search, per example: `tree` internal nodes
(what exhaustive scoring runs), `run` (what the best-first search ran) and `must` (nodes whose
path log-probability is at least the best label's: any exact search has to run those, since the
tokens below an unrun node could all have log-probability 0). `ceiling` is the most examples/s
any exact scoring could reach here: the model's forward throughput on a large batch (measured in
this run) over the tokens each example needs at least (its own prompt tokens + `must`).

    python bench/eval_speed.py [--examples 200] [--shots 0,5] [--finetuned RUN]

`--finetuned RUN` adds rows for a fine-tuned model on Banking77 (for example the run folder
`tunesmith compare` wrote), prompted with the instruction it was trained with: a model that knows
the labels lets the best-first search skip most of the tree.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tunesmith.data.splits import load_task_data
from tunesmith.evaluation.backends import LocalBackend
from tunesmith.evaluation.runner import evaluate
from tunesmith.evaluation.scoring import LabelTree, SearchStats, answer_tokens
from tunesmith.modeling import load_for_inference
from tunesmith.prompting.prompter import PromptConfig

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--shots", default="0,5")
    ap.add_argument("--finetuned", default=None, help="a Banking77 run folder to time as well")
    args = ap.parse_args()
    model, tokenizer = load_for_inference("smollm2-135m-instruct")
    peak = forward_throughput(model)
    print(f"model dtype {next(model.parameters()).dtype}, batch 16, {args.examples} examples; "
          f"forward throughput {peak:.0f} tokens/s (16 x 128 tokens)")
    print(f"{'data set':13} {'labels':>6} {'shots':>5} {'mode':9} {'examples/s':>10} "
          f"{'accuracy':>8} {'invalid':>7} {'tree':>5} {'run':>6} {'must':>6} {'ceiling':>7}")
    rates: dict = {}
    for name in ("sst2", "banking77"):
        td = load_task_data(SHARED / name / "chat" / "test.jsonl")
        test = td.test[: args.examples]
        evaluate(LocalBackend(model, tokenizer), test[:16], td.spec)  # warm-up: oneDNN set-up
        for k in map(int, args.shots.split(",")):
            rates[name, k] = rows(name, model, tokenizer, test, td.spec, k, td.train, peak)
    if args.finetuned:
        import json

        from tunesmith.data.taskfile import TaskSpec

        ft_model, ft_tok = load_for_inference(args.finetuned)
        meta = json.loads((Path(args.finetuned) / "final" / "tunesmith.json").read_text())
        spec = TaskSpec(**meta["task"])
        test = load_task_data(SHARED / "banking77" / "chat" / "test.jsonl").test[: args.examples]
        evaluate(LocalBackend(ft_model, ft_tok), test[:16], spec)
        r = rows("banking77-ft", ft_model, ft_tok, test, spec, 0, [], peak)
        print(f"ratio_score_over_generate_banking77_finetuned={r['score'] / r['generate']:.2f} "
              f"(exact-scoring ceiling {r['ceiling'] / r['generate']:.2f})")
    for k in map(int, args.shots.split(",")):
        for name in ("banking77", "sst2"):
            r = rates[name, k]
            print(f"ratio_score_over_generate_{name}_{k}shot={r['score'] / r['generate']:.2f} "
                  f"(exact-scoring ceiling {r['ceiling'] / r['generate']:.2f})")
        slowdown = rates["sst2", k]["score"] / rates["banking77", k]["score"]
        print(f"slowdown_banking77_over_sst2_scoring_{k}shot={slowdown:.2f}")


def rows(name: str, model, tokenizer, test, spec, shots: int, train, peak: float) -> dict:
    """Time scoring and generation on `test`, print a row each; returns examples/s of both and
    the exact-scoring ceiling."""
    tree = LabelTree.build([answer_tokens(tokenizer, label) for label in spec.labels])
    internal = sum(1 for c in tree.children if c)
    out = {}
    for mode in ("score", "generate"):
        stats = SearchStats()
        backend = LocalBackend(model, tokenizer, batch_size=16, stats=stats)
        r = evaluate(backend, test, spec, prompt=PromptConfig(shots), train=train, mode=mode)
        out[mode] = 1 / r.latency_s
        work = ""
        if mode == "score":
            n = stats.examples
            out["ceiling"] = peak / ((stats.prompt_tokens + stats.required) / n)
            work = (f" {internal:5} {stats.nodes_run / n:6.1f} {stats.required / n:6.1f} "
                    f"{out['ceiling']:7.1f}")
        print(f"{name:13} {len(spec.labels):6} {shots:5} {mode:9} {out[mode]:10.1f} "
              f"{r.metrics['accuracy']:8.3f} {r.invalid:7}{work}", flush=True)
    return out


def forward_throughput(model) -> float:
    """Tokens/s of a plain forward pass over a 16 x 128 batch (best of 3): the most any
    scoring pass can do here."""
    import time

    import torch

    ids = torch.randint(0, 1000, (16, 128))
    best = float("inf")
    with torch.inference_mode():
        for _ in range(3):
            start = time.perf_counter()
            model(input_ids=ids, logits_to_keep=1)
            best = min(best, time.perf_counter() - start)
    return ids.numel() / best


if __name__ == "__main__":
    main()
