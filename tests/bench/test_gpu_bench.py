"""The prepared GPU check's benchmark, run in its CPU smoke mode so it does not rot while no GPU
is lent: every configuration trains in both tools and a ratio is printed for each."""

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_gpu_bench_smoke_runs_every_configuration_in_both_tools(tmp_path):
    pytest.importorskip("bitsandbytes")  # the qlora rows
    proc = subprocess.run(
        [sys.executable, "bench/gpu_bench.py", "--device", "cpu", "--sizes", "tiny", "--steps",
         "2", "--methods", "lora,qlora,full", "--folder", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO, timeout=600, check=False,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
             "TUNESMITH_HOME": str(tmp_path / "home")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "FAILED" not in proc.stdout, proc.stdout
    ratios = dict(re.findall(r"ratio_tiny_(\w+)=([\d.]+)", proc.stdout))
    assert set(ratios) == {"lora", "qlora", "full"}, proc.stdout
    assert all(float(r) > 0 for r in ratios.values())
