"""The benchmarks under bench/ on tiny data, so that they cannot rot. Their
figures are printed, never asserted (speed is measured by `bench/`, not here);
what is asserted is that every part ran and every engine gave the same number
of rows for every query."""

import json
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


def test_make_bench_suite_smoke(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--bin", BIN,
                          "--out", str(tmp_path / "out"), "--data", str(tmp_path / "data")],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr[-5000:]
    assert out.stdout.strip().splitlines()[-1].startswith("| Freshness"), "summary table printed last"
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["disagreements"] == [], res["disagreements"]
    assert len(res["tpch"]["lambdadb"]) == 22 and len(res["dashboard"]["lambdadb"]) == 12
    assert len(res["dashboard"]["lambdadb views"]) == 10
    assert res["ingest"]["consumed"] == res["ingest"]["events"]
    assert all(f["probes"] > 0 for f in res["freshness"].values())
    md = (tmp_path / "out" / "RESULTS.md").read_text()
    assert "## Targets" in md and "TPC-H" in md
    for chart in ("tpch", "dashboard", "freshness", "ingest"):
        assert (tmp_path / "out" / "charts" / f"{chart}.png").stat().st_size > 10_000
