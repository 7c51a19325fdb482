"""`tunesmith export RUN --format hf|gguf [--merge] --out PATH`: the model, for use elsewhere."""

from __future__ import annotations

import argparse

from tunesmith.cli.output import print_json
from tunesmith.export import export


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a fine-tuned model as a Hugging Face folder or GGUF",
                       description="hf: the LoRA adapter (or, with --merge, the merged model); "
                       "gguf: one file for llama.cpp/Ollama with the merged weights, tokenizer "
                       "and chat template (Llama-architecture models).")
    p.add_argument("model", metavar="RUN", help="a run folder, its final/, or any --model spec")
    p.add_argument("--format", required=True, choices=["hf", "gguf"])
    p.add_argument("--merge", action="store_true",
                   help="hf: merge LoRA adapters into the base weights (gguf always merges)")
    p.add_argument("--dtype", choices=["f16", "f32"], default="f16",
                   help="gguf: weight precision (norms stay f32)")
    p.add_argument("--out", required=True, metavar="PATH")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    path = export(args.model, args.format, args.out, merge=args.merge, dtype=args.dtype)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() \
        else path.stat().st_size
    if args.json:
        print_json({"format": args.format, "path": str(path), "bytes": size})
    else:
        print(f"wrote {path} ({size / 1e6:.1f} MB, {args.format})")
    return 0
