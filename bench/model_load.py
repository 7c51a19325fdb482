"""Time to get the embedded model and tokenizer ready, first (GGUF conversion) and afterwards.

Each measurement runs in a fresh Python process and starts its clock after `import torch,
transformers` (library imports aside, as the figure in the README states). The first run uses an
empty home folder, so it converts the GGUF; the second loads the saved safetensors.

    python bench/model_load.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile

CHILD = """
import time, torch, transformers
from tunesmith.modeling import load_model, load_tokenizer
start = time.perf_counter()
tok = load_tokenizer("smollm2-135m-instruct")
model = load_model("smollm2-135m-instruct")
print(f"{time.perf_counter() - start:.2f}")
"""


def timed(home: str) -> float:
    out = subprocess.run([sys.executable, "-c", CHILD], env={"TUNESMITH_HOME": home, "PATH": ""},
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        first = timed(home)
        later = [timed(home) for _ in range(3)]
    print(f"first_load_with_conversion_s={first:.2f}")
    print("later_loads_s=" + ",".join(f"{t:.2f}" for t in later))
    print(f"speedup={first / min(later):.1f}x")


if __name__ == "__main__":
    main()
