"""Replacing a fine-tuned model, end to end, measured: a LoRA fine-tune served by `tunesmith serve`
plays the incumbent (a hosted fine-tune about to be retired); it is inventoried and recorded on
the data's inputs; then `compare --incumbent --teacher` puts prompting, a fine-tune on the gold
labels, one on the incumbent's answers only and one on both side by side.

    python bench/migration.py [--data ../shared/data/sst2/chat] [--train 300] [--test 200]

Prints each stage's wall time, the recording's requests/s at concurrency 1 and 8 (the same
server, different inputs: nothing cached is counted), and per row the gold metric and the
agreement with the incumbent. Soft-label distillation (`--distill soft`) is not built yet, so
it has no row. Run it alone on the machine (two model processes slow each other down).
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

REPO = Path(__file__).resolve().parents[1]
KEY = "bench-key-0001"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tunesmith(*argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tunesmith", *map(str, argv)], check=True,
                          capture_output=True, text=True, **kw)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "sst2" / "chat"))
    ap.add_argument("--train", type=int, default=300)
    ap.add_argument("--validation", type=int, default=100)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=2, help="the incumbent's fine-tuning epochs")
    args = ap.parse_args()
    source = Path(args.data)
    meta = json.loads((source.parent / "meta.json").read_text())
    work = Path(tempfile.mkdtemp(prefix="bench-migration-"))
    data = work / "data"
    data.mkdir()
    for split, n in (("train", args.train), ("validation", args.validation),
                     ("test", args.test)):
        lines = (source / f"{split}.jsonl").read_text().splitlines()[:n]
        (data / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    labels = meta.get("labels") or sorted({json.loads(x)["messages"][-1]["content"] for x in
                                           (data / "train.jsonl").read_text().splitlines()})
    system = json.loads((data / "train.jsonl").read_text().splitlines()[0])["messages"][0]
    (data / "task.json").write_text(json.dumps({"task": "classification", "labels": labels,
                                                "system": system["content"]}))
    env = {**os.environ, "BENCH_KEY": KEY, "TUNESMITH_HOME": str(work / "tunesmith-home")}
    (work / "keys.txt").write_text(f"{KEY} team\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    times: dict[str, float] = {}
    print(f"work folder {work}; data {args.train} train / {args.validation} validation / "
          f"{args.test} test examples of {source}", flush=True)

    server = subprocess.Popen(
        [sys.executable, "-m", "tunesmith", "serve", "--port", str(port), "--home",
         str(work / "svc"), "--keys", str(work / "keys.txt")], env=env,
        stdout=open(work / "serve.log", "w"), stderr=subprocess.STDOUT)
    try:
        from openai import OpenAI

        client = OpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=600)
        deadline = time.time() + 300
        while True:
            try:
                client.models.list()
                break
            except Exception:  # noqa: BLE001 - not up yet
                if time.time() > deadline:
                    raise
                time.sleep(1)

        # ---- the incumbent: a fine-tune made through the OpenAI API --------------------------
        t0 = time.perf_counter()
        upload = client.files.create(file=open(data / "train.jsonl", "rb"), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(
            model="smollm2-135m-instruct", training_file=upload.id, suffix="incumbent", seed=0,
            hyperparameters={"n_epochs": args.epochs})
        while (job := client.fine_tuning.jobs.retrieve(job.id)).status not in (
                "succeeded", "failed", "cancelled"):
            time.sleep(2)
        assert job.status == "succeeded", job.error
        times["incumbent fine-tune (serve job)"] = time.perf_counter() - t0
        incumbent = job.fine_tuned_model
        shutdowns = work / "shutdowns.yaml"
        shutdowns.write_text('models:\n  "smollm2-135m-instruct":\n    shutdown: "2027-01-14"\n'
                             '    notice: "2026-10-14"\n    source: https://example.com/bench\n')

        t0 = time.perf_counter()
        inventory = json.loads(tunesmith("migrate", "inventory", "--base-url", url,
                                         "--api-key-env", "BENCH_KEY", "--shutdowns", shutdowns,
                                         "--json", env=env).stdout)
        times["migrate inventory"] = time.perf_counter() - t0
        row = next(f for f in inventory["fine_tunes"] if f["model"] == incumbent)
        print(f"inventory: {incumbent}: {row['days_left']} days left (bench table), trained "
              f"{row['trained_tokens']:,} tokens", flush=True)

        # ---- recording: concurrency 1 against 8, on different inputs --------------------------
        common = ["--model", f"openai:{incumbent}", "--base-url", url, "--api-key-env",
                  "BENCH_KEY", "--max-tokens", "8", "--json", "--quiet"]
        first = work / "first.jsonl"
        first.write_text("\n".join((data / "validation.jsonl").read_text().splitlines()[:40])
                         + "\n")
        rates = {}
        for concurrency, inputs, out in ((1, first, work / "rec-c1"), (8, data, work / "rec")):
            t0 = time.perf_counter()
            doc = json.loads(tunesmith("migrate", "record", "--inputs", inputs, "--out", out,
                                       "--concurrency", concurrency, *common, env=env).stdout)
            seconds = time.perf_counter() - t0
            asked = json.loads((out / "record.json").read_text())["asked"]
            rates[concurrency] = (asked, doc["seconds"], seconds)
            times[f"migrate record, concurrency {concurrency}"] = seconds
        for c, (asked, sending, seconds) in rates.items():
            print(f"record at concurrency {c}: {asked} requests in {sending:.1f} s sending "
                  f"({asked / sending:.2f} requests/s; {seconds:.1f} s with start-up)", flush=True)
        ratio = (rates[8][0] / rates[8][1]) / (rates[1][0] / rates[1][1])
        print(f"ratio_record_c8_over_c1={ratio:.2f}", flush=True)

        # ---- the comparison ---------------------------------------------------------------
        t0 = time.perf_counter()
        report = json.loads(tunesmith(
            "compare", "--data", data, "--shots", "0,5", "--method", "lora", "--incumbent",
            work / "rec" / "test.jsonl", "--teacher", f"openai:{incumbent}", "--base-url", url,
            "--api-key-env", "BENCH_KEY", "--shutdowns", shutdowns, "--no-audit", "--out",
            work / "report", "--quiet", "--json", env=env).stdout)
        times["compare --incumbent --teacher"] = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(60)

    agreement = report["incumbent"]["agreement"]
    print(f"\n{'row':36} {'macro-F1':>9} {'accuracy':>9}  agreement with the incumbent [95%], "
          "kappa")
    for a in report["approaches"]:
        m = a["metrics"]
        ag = agreement.get(a["name"])
        with_it = ("(itself)" if ag is None else f"{ag['value']:.3f} [{ag['low']:.3f}, "
                   f"{ag['high']:.3f}], {ag.get('kappa')}")
        print(f"{a['name'][:36]:36} {m['macro_f1']:9.3f} {m['accuracy']:9.3f}  {with_it}")
    for d in report["distillation"]:
        print(f"{d['name']}: {100 * (d['share_of_gold'] or 0):.0f}% of {d['gold_row']}'s "
              "macro-F1")
    print(f"recommendation: {report['recommendation']['choice']}: "
          f"{report['recommendation']['reason']}")
    print("\nstage                                   seconds")
    for stage, seconds in times.items():
        print(f"{stage:38} {seconds:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
