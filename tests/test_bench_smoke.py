"""`voicegraph bench --quick` runs end to end and its table has every row (the numbers are not checked)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROWS = ("1 ingest", "2 turn overhead", "3 time to first audio", "4 barge-in", "5 capacity", "6 memory",
        "7 offline providers", "8 endpointing", "9 cancellation", "11 cluster", "12 speculation",
        "13 turn detectors")


@pytest.mark.timeout(480)  # scenario 11 starts redis-server, HAProxy and workers twice (~30 s); 12 streams speech
def test_bench_quick_prints_and_writes_every_row(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    run = subprocess.run([sys.executable, "-m", "flow.cli", "bench", "--quick", "--out", str(out)],
                         capture_output=True, text=True, timeout=450)
    assert run.returncode == 0, run.stderr[-3000:]
    written = out.read_text()
    assert written.startswith("# voicegraph benchmarks") and "cores" in written
    for row in ROWS:
        assert f"| {row} |" in run.stdout and f"| {row} |" in written
    assert "no data" not in written
    for n, tail in re.findall(r"n=(\d+) p50=\S+ p90=\S+ (p99|max)=", written):  # p99 only from ≥ 100 samples
        assert (tail == "p99") == (int(n) >= 100), (n, tail)
    assert "ours - floor" in written
    for row in ("| 1 ingest | same with webm/opus", "| 5 capacity | step, webm |", "webm (KiB; with the ffmpeg"):
        assert row in written, row


def test_bench_soak_reports_turns_memory_and_tracebacks() -> None:
    run = subprocess.run([sys.executable, "-m", "flow.cli", "bench", "--soak", "0.2", "--sessions", "3"],
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith("| 10 soak |")]
    assert len(rows) == 4, run.stdout
    assert "turns answered" in rows[0] and "growth" in rows[1]
    assert "second half" in rows[2] and rows[2].count(" → ") == 4, rows[2]  # RSS at each quarter
    assert rows[3].endswith("| 0 / 0 |"), rows[3]  # no traceback, no ERROR line in the server's log


def test_bench_profile_writes_a_flame_graph_of_the_server(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "flow.cli", "bench", "--profile", "burst", "--quick"],
                         capture_output=True, text=True, timeout=180, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    svg = (tmp_path / "profile-burst.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "flow/cli.py" in svg or "cmd_serve" in svg  # frames of the server, not of the bench


def test_bench_profile_refuses_an_unknown_scenario() -> None:
    run = subprocess.run([sys.executable, "-m", "flow.cli", "bench", "--profile", "no-such-scenario"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "burst" in run.stderr
