"""How long `data check` takes on 10,000 examples once the tokenizer is loaded.

Builds a 10,000-row chat file from ../shared/data (SST-2, Banking77 and WNUT-17 splits, in that
order), loads the embedded model's tokenizer (timed apart), then times `check_file`, the whole
check the command runs: reading, every row and file check, token statistics and the estimate.

    python bench/data_check_speed.py [--rows 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tunesmith.data.check import check_file
from tunesmith.modeling import load_tokenizer
from tunesmith.pricing import load_prices

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def build_file(rows: int, out: Path) -> int:
    lines: list[str] = []
    for name in ("sst2", "banking77", "wnut17"):
        for split in ("train", "validation", "test"):
            lines += (SHARED / name / "chat" / f"{split}.jsonl").read_text().splitlines()
    if len(lines) < rows:
        sys.exit(f"only {len(lines)} rows in {SHARED}")
    out.write_text("\n".join(lines[:rows]) + "\n")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mixed.jsonl"
        build_file(args.rows, path)
        start = time.perf_counter()
        tokenizer = load_tokenizer("smollm2-135m-instruct")
        load_s = time.perf_counter() - start
        prices = load_prices()
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            report = check_file(path, tokenizer=tokenizer, model="smollm2-135m-instruct",
                                prices=prices)
            times.append(time.perf_counter() - start)
    print(f"rows={args.rows} examples={report.examples} errors={len(report.errors)} "
          f"warnings={len(report.warnings)} tokens={report.tokens.total_tokens}")
    print(f"tokenizer_load_s={load_s:.2f}")
    print(f"check_s_median={statistics.median(times):.2f} check_s_all="
          + ",".join(f"{t:.2f}" for t in times))
    print(f"examples_per_s={report.examples / statistics.median(times):,.0f}")


if __name__ == "__main__":
    main()
