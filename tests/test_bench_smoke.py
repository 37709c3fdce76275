"""`voicegraph bench --quick` runs end to end and its table has every row (the numbers are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROWS = ("1 ingest", "2 turn overhead", "3 time to first audio", "4 barge-in", "5 capacity", "6 memory",
        "7 offline providers", "8 endpointing", "9 cancellation")


def test_bench_quick_prints_and_writes_every_row(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    run = subprocess.run([sys.executable, "-m", "flow.cli", "bench", "--quick", "--out", str(out)],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    written = out.read_text()
    assert written.startswith("# voicegraph benchmarks") and "cores" in written
    for row in ROWS:
        assert f"| {row} |" in run.stdout and f"| {row} |" in written
    assert "no data" not in written
