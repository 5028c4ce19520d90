"""The benchmarks under bench/ on tiny data, so that they cannot rot. Their
figures are printed, never asserted (speed is measured by `bench/`, not here)."""

import subprocess
import sys

from harness import BIN, ROOT


def test_views_benchmark_runs():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "views.py"), "--events", "20000",
                          "--runs", "1", "--bin", BIN], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "answers differ" not in out.stdout, out.stdout
    for line in ("dashboard query", "cache hit round trip", "speed layer:"):
        assert line in out.stdout, out.stdout
