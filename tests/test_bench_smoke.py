"""`voicegraph bench --quick` runs end to end and its table has every row (the numbers are not checked)."""

from __future__ import annotations

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


def test_bench_soak_reports_turns_memory_and_tracebacks() -> None:
    run = subprocess.run([sys.executable, "-m", "flow.cli", "bench", "--soak", "0.2", "--sessions", "3"],
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith("| 10 soak |")]
    assert len(rows) == 3, run.stdout
    assert "turns answered" in rows[0] and "growth" in rows[1]
    assert rows[2].endswith("| 0 / 0 |"), rows[2]  # no traceback, no ERROR line in the server's log
