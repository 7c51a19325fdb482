"""Training throughput and memory on a GPU: tunesmith against `transformers.Trainer`, the same
tokens, models built from a config with random weights (no network, no download).

    python bench/gpu_bench.py [--sizes 1b,8b] [--methods lora,full] [--steps 12]
    python bench/gpu_bench.py --device cpu --sizes tiny --steps 3     # a smoke run anywhere

Shapes: `8b` is Llama-3-8B's (32 layers, 4096 hidden, 14336 MLP, 32/8 heads, 128,256 words),
`1b` Llama-3.2-1B's (16 layers, 2048 hidden, 8192 MLP). Each run trains `--steps` optimizer steps
of 8 examples x 512 tokens (loss on the second half of each example) after 2 warm-up steps, in
its own process; both tools run bf16: tunesmith LoRA with bf16 autocast, full fine-tuning of the
1B in autocast (fp32 weights) and of the 8B in `bf16-true` (bf16 weights and AdamW state: the
fp32 copy does not fit 141 GB beside activations); Trainer with `bf16=True` and, for the 8B full
run, the model loaded in bf16 (the same pure-bf16 state). The 8B runs use gradient
checkpointing in both tools. Printed: real tokens/s, peak GPU memory (max allocated), and the
tunesmith/Trainer ratio per configuration. `--methods qlora`: LoRA on the base loaded in 4 bits
(NF4, bf16 compute) in both tools; needs bitsandbytes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPES = {
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
               num_attention_heads=32, num_key_value_heads=8, vocab_size=128_256,
               tie_word_embeddings=False, rope_theta=500_000.0),
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
               num_attention_heads=32, num_key_value_heads=8, vocab_size=128_256,
               tie_word_embeddings=True, rope_theta=500_000.0),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, vocab_size=8_192,
                 tie_word_embeddings=True),
}
BATCH, SEQ, WARMUP, LR = 8, 512, 2, 1e-5


def build(size: str, folder: Path, device: str) -> None:
    """A random model of `size` saved in bf16, with a byte-level BPE tokenizer trained here on
    synthetic words (no download, no GGUF: the GPU machine has neither) and ChatML."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(max_position_embeddings=4096, **SHAPES[size])
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer().save_pretrained(folder)


def tokenizer():
    import random

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from tunesmith.data.render import CHATML_TEMPLATE

    rng = random.Random(0)
    letters = "etaoinshrdlucmfwypvbgkjqxz"
    words = ["".join(rng.choices(letters, k=rng.randint(2, 9))) for _ in range(3000)]
    text = [" ".join(rng.choices(words, k=50)) for _ in range(2000)]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(text, trainers.BpeTrainer(
        vocab_size=8000, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>",
                                  pad_token="<|endoftext|>", bos_token=None)
    tok.chat_template = CHATML_TEMPLATE
    tok.words = words
    return tok


def data(folder: Path, n: int) -> Path:
    """`n` chat examples of exactly SEQ tokens, the answer their second half."""
    import random

    from tunesmith.modeling import load_tokenizer

    tok = load_tokenizer(str(folder / "model"))
    rng = random.Random(0)
    rows = []
    for _ in range(n):
        half = SEQ // 2
        q = tok.decode([rng.randrange(300, len(tok)) for _ in range(half)])
        a = tok.decode([rng.randrange(300, len(tok)) for _ in range(half)])
        rows.append({"messages": [{"role": "user", "content": q},
                                  {"role": "assistant", "content": a}]})
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def tokenized(folder: Path, train: Path):
    from tunesmith.data.formats import read_dataset
    from tunesmith.data.render import tokenize_example
    from tunesmith.modeling import load_tokenizer

    tok = load_tokenizer(str(folder / "model"))
    return [tokenize_example(tok, e, SEQ) for e in read_dataset(train).examples]


def run_tunesmith(size: str, method: str, folder: Path, train: Path, steps: int,
                  device: str) -> dict:
    from tunesmith.config import TrainConfig
    from tunesmith.training import train as tune_train
    from tunesmith.training.hooks import TrainHooks, TrainingStopped

    done = {"n": 0}

    def stop() -> bool:
        done["n"] += 1
        return done["n"] >= steps + WARMUP

    import shutil

    precision = "bf16-true" if (size == "8b" and method == "full") else "bf16"
    out = folder / f"run-{method}"
    shutil.rmtree(out, ignore_errors=True)
    config = TrainConfig(train_file=str(train), out=str(out), model=str(folder / "model"),
                         method=method, epochs=1, batch_size=BATCH, lr=LR, max_seq_len=SEQ,
                         micro_batch_tokens=BATCH * SEQ, warmup_ratio=0.0, quiet=True,
                         precision=precision, gradient_checkpointing=size == "8b",
                         save_every_minutes=0, device=device)
    try:
        tune_train(config, TrainHooks(should_stop=stop))
    except TrainingStopped:
        pass
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    timed = [r for r in records if "tokens" in r][WARMUP:]
    return {"tokens": sum(r["tokens"] for r in timed),
            "seconds": sum(r["tokens"] / r["tokens_per_s"] for r in timed),
            "loss": timed[-1]["train_loss"], "precision": precision}


def run_trainer(size: str, method: str, folder: Path, train: Path, steps: int,
                device: str) -> dict:
    import torch
    from transformers import (
        AutoModelForCausalLM,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from tunesmith.config import TrainConfig
    from tunesmith.modeling import load_tokenizer
    from tunesmith.training.methods import prepare_lora

    items = tokenized(folder, train)
    rows = [{"input_ids": x.input_ids, "labels": x.labels,
             "attention_mask": [1] * len(x.input_ids)} for x in items]
    pure_bf16 = size == "8b" and method == "full"
    if method == "qlora":  # the base loaded in 4 bits (NF4, double quantization, bf16 compute)
        from tunesmith.training.quantization import quantization_config

        model = AutoModelForCausalLM.from_pretrained(
            folder / "model", dtype=torch.bfloat16, attn_implementation="sdpa",
            quantization_config=quantization_config("4bit", torch.bfloat16),
            device_map={"": device})
    else:
        model = AutoModelForCausalLM.from_pretrained(
            folder / "model", dtype=torch.bfloat16 if pure_bf16 else torch.float32,
            attn_implementation="sdpa")
    if method in ("lora", "qlora"):
        model = model.to(torch.bfloat16) if method == "lora" else model  # the frozen base in
        # bf16, as tunesmith keeps it
        model = prepare_lora(model, TrainConfig())
        for p in model.parameters():
            if p.requires_grad:
                p.data = p.data.float()
    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter())

        def on_step_end(self, *a, **k):
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter())

    args = TrainingArguments(
        output_dir=str(folder / "trainer"), per_device_train_batch_size=BATCH,
        max_steps=steps + WARMUP, learning_rate=LR, max_grad_norm=1.0, warmup_steps=0,
        bf16=True, use_cpu=device == "cpu", save_strategy="no", report_to=[],
        logging_steps=1000, dataloader_num_workers=0, seed=0, disable_tqdm=True,
        gradient_checkpointing=size == "8b",
        gradient_checkpointing_kwargs={"use_reentrant": False} if size == "8b" else None)
    trainer = Trainer(model=model, args=args, train_dataset=rows, callbacks=[Timer()],
                      data_collator=DataCollatorForSeq2Seq(load_tokenizer(str(folder / "model")),
                                                           padding=True))
    out = trainer.train()
    spans = [times[i + 1] - times[i] for i in range(0, len(times) - 1, 2)][WARMUP:]
    return {"tokens": BATCH * SEQ * len(spans), "seconds": sum(spans),
            "loss": out.training_loss, "precision": "bf16 (Trainer)"}


def child(tool: str, size: str, method: str, folder: Path, steps: int, device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    run = run_tunesmith if tool == "tunesmith" else run_trainer
    result = run(size, method, folder, folder / "train.jsonl", steps, device)
    result["peak_gb"] = (torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0)
    print("RESULT " + json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1b,8b")
    ap.add_argument("--methods", default="lora,full")
    ap.add_argument("--tools", default="tunesmith,trainer")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--folder", default=None, help="where models are built (default: a temp dir)")
    ap.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        tool, size, method = args.one
        child(tool, size, method, Path(args.folder) / size, args.steps, args.device)
        return
    import torch

    if args.device == "cuda":
        print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    root = Path(args.folder or tempfile.mkdtemp(prefix="gpu-bench-"))
    results = {}
    for size in args.sizes.split(","):
        folder = root / size
        if not (folder / "model" / "config.json").is_file():
            t = time.perf_counter()
            (folder / "model").mkdir(parents=True, exist_ok=True)
            build(size, folder / "model", args.device)
            data(folder, (args.steps + WARMUP + 1) * BATCH)
            print(f"{size}: model and data built in {time.perf_counter() - t:.0f} s", flush=True)
        for method in args.methods.split(","):
            for tool in args.tools.split(","):
                cmd = [sys.executable, __file__, "--one", tool, size, method, "--folder",
                       str(root), "--steps", str(args.steps), "--device", args.device]
                t = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True,
                                      env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
                line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
                if proc.returncode or line is None:
                    print(f"{tool} {size} {method}: FAILED ({time.perf_counter() - t:.0f} s)\n"
                          f"{proc.stderr[-1500:]}", flush=True)
                    continue
                r = json.loads(line[7:])
                r["tokens_per_s"] = r["tokens"] / r["seconds"]
                results[(tool, size, method)] = r
                print(f"{tool:10} {size:5} {method:5} {r['precision']:15} "
                      f"{r['tokens_per_s']:10,.0f} tok/s  peak {r['peak_gb']:6.1f} GB  "
                      f"loss {r['loss']:.3f}  ({time.perf_counter() - t:.0f} s)", flush=True)
    for (tool, size, method), r in results.items():
        other = results.get(("trainer", size, method))
        if tool == "tunesmith" and other:
            print(f"ratio_{size}_{method}={r['tokens_per_s'] / other['tokens_per_s']:.2f} "
                  f"memory_{size}_{method}={r['peak_gb'] / max(other['peak_gb'], 1e-9):.2f}")


if __name__ == "__main__":
    main()
