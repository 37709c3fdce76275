"""`voicegraph bench --quick` runs end to end and its table has every row (the numbers are not checked)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROWS = {"1": "1 ingest", "2": "2 turn overhead", "3": "3 time to first audio", "4": "4 barge-in",
        "5": "5 capacity", "6": "6 memory", "7": "7 offline providers", "8": "8 endpointing",
        "9": "9 cancellation", "11": "11 cluster", "12": "12 speculation", "13": "13 turn detectors"}
GROUPS = (("1", "2", "3", "4", "6"), ("5", "11", "13"), ("12", "9", "8", "7"))
"""Every scenario, in three `--only` runs side by side: most quick scenarios wait on real time
(speech streamed at its pace, capacity steps, server starts), so three at once take about a
third of the wall time of one `--quick` run, which CI cannot spare. Timing is not what this
test checks; `voicegraph bench --quick` alone runs them one after another."""


@pytest.mark.timeout(420)  # the slowest group (ingest starts ten servers and three browsers) ~100 s under load
def test_bench_quick_prints_and_writes_every_row(tmp_path: Path) -> None:
    assert sorted(n for group in GROUPS for n in group) == sorted(ROWS)  # every scenario is run
    runs = [(group, tmp_path / f"bench-{'-'.join(group)}.md", subprocess.Popen(
        [sys.executable, "-m", "flow.cli", "bench", "--quick", "--only", ",".join(group), "--out",
         str(tmp_path / f"bench-{'-'.join(group)}.md")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for group in GROUPS]
    try:
        done = [(group, out, *proc.communicate(timeout=400), proc.returncode) for group, out, proc in runs]
    finally:
        for _, _, proc in runs:
            proc.kill()
    for group, out, stdout, stderr, code in done:
        assert code == 0, (group, stderr[-3000:])
        written = out.read_text()
        assert written.startswith("# voicegraph benchmarks") and "cores" in written
        assert f"scenarios {', '.join(group)} of a quick run" in written
        for n in group:
            assert f"| {ROWS[n]} |" in stdout and f"| {ROWS[n]} |" in written, (n, stdout[-2000:])
            assert f"bench: scenario {n} took" in stderr
        assert "no data" not in written, written
        for n, tail in re.findall(r"n=(\d+) p50=\S+ p90=\S+ (p99|max)=", written):  # p99 only from ≥ 100 samples
            assert (tail == "p99") == (int(n) >= 100), (n, tail)
        assert "Run time per scenario (s): " in written
    written = "".join(out.read_text() for _, out, *_ in done)
    assert "ours - floor" in written
    for row in ("| 1 ingest | same with webm/opus", "| 5 capacity | step, webm |",
                "| 2 turn overhead | the floor above: the three provider calls",
                "webm (KiB; with any decoder processes",
                "| 11 cluster | step, 2 worker(s) |", "| 12 speculation | fast_streaming: provider requests"):
        assert row in written, row


def test_bench_only_refuses_an_unknown_scenario() -> None:
    run = subprocess.run([sys.executable, "-m", "flow.cli", "bench", "--quick", "--only", "2,10", "--out", ""],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "unknown scenario 10" in run.stderr and "13" in run.stderr


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
