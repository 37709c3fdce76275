"""`voicegraph bench`: one table of where voicegraph stands, printed and written to BENCHMARKS.md.

Every figure comes from this machine in this run: a real server on loopback, real Socket.IO
clients, real speech, the OpenAI-compatible stub for provider latencies. `--quick` runs every
scenario at a tiny size (a smoke test in CI checks that every row is there, not the numbers).
"""

from __future__ import annotations

import asyncio
import datetime
import os
import platform
import statistics
from pathlib import Path

from flow.bench import cancel, endpointing, ingest, latency, memory, speculation, turns

Row = tuple[str, str, str]  # scenario, measure, figures


def _stats(values: list[float]) -> str:
    if not values:
        return "no data"
    return (f"n={len(values)} p50={statistics.median(values):.0f} p99={latency.pct(values, 99):.0f} "
            f"max={max(values):.0f}")


def _p90(values: list[float]) -> str:
    """p50 and p90 (no p99: these runs are fewer than 100)."""
    if not values:
        return "no data"
    return f"n={len(values)} p50={statistics.median(values):.0f} p90={latency.pct(values, 90):.0f}"


async def speculation_rows(runs: int) -> list[Row]:
    """Default vs fast (and streaming vs fast_streaming) on the same stub, speech in real time."""
    rows: list[Row] = []
    cond = "stub STT 300 / first token 350 / 20 per token / TTS 250 ms, silence_ms 700"
    for base, fast in (("default", "fast"), ("streaming", "fast_streaming")):
        plain, _ = await speculation.first_audio(base, runs)
        quick, thrown = await speculation.first_audio(fast, runs)
        rows.append(("12 speculation", f"end of speech → first audio, {base} graph ({cond}) (ms)", _p90(plain)))
        rows.append(("12 speculation", f"same, {fast} graph (speculate_after_ms 250) (ms)", _p90(quick)))
        if plain and quick:
            p50, fast50 = statistics.median(plain), statistics.median(quick)
            floor = max(700, 250 + p50 - 700)  # the provider path is what the base graph adds to silence_ms
            rows.append(("12 speculation", f"{fast}: ratio of p50s; floor max(silence_ms, speculate_after_ms "
                         "+ provider path)", f"{fast50 / p50:.2f}; floor {floor:.0f}, p50 {fast50 - floor:+.0f}"))
        _, thrown_paused = await speculation.first_audio(fast, max(2, runs // 2), paused=True)
        rows.append(("12 speculation", f"{fast}: provider requests cancelled per committed turn",
                     f"no pause {thrown:.1f} · a 450 ms mid-sentence pause {thrown_paused:.1f}"))
    return rows


async def collect(quick: bool) -> list[Row]:
    rows: list[Row] = []
    sessions, chunks = (2, 200) if quick else (10, 1500)
    rounds = 1 if quick else 3
    bare, ours = await ingest.compare(sessions, chunks, rounds)
    rows.append(("1 ingest", f"chunks/s, {sessions} sessions flooding, median of {rounds} (servers in their "
                 "own processes)", f"bare python-socketio {bare.rate:,.0f} · voicegraph {ours.rate:,.0f} · "
                 f"ratio {ours.rate / bare.rate:.2f}"))
    rows.append(("1 ingest", "server CPU per chunk (µs)",
                 f"bare {bare.cpu_us:.0f} · voicegraph {ours.cpu_us:.0f}"))
    watched = await ingest.watched(sessions, chunks)
    rows.append(("1 ingest", f"same, {ingest.WATCHER}: chunks/s, CPU per chunk (µs)",
                 f"{watched.rate:,.0f} ({watched.rate / ours.rate:.2f}x unwatched) · {watched.cpu_us:.0f}"))
    plain, scraped, recorded = await ingest.observed(sessions, chunks, rounds)
    rows.append(("1 ingest", f"same, /metrics scraped every 1 s · every session recorded to disk (--record): "
                 f"chunks/s, CPU per chunk (µs), median of {rounds}",
                 f"not scraped, not recorded {plain.rate:,.0f}, {plain.cpu_us:.0f} · scraped {scraped.rate:,.0f} "
                 f"({scraped.rate / plain.rate:.2f}x), {scraped.cpu_us:.0f} · recorded {recorded.rate:,.0f} "
                 f"({recorded.rate / plain.rate:.2f}x), {recorded.cpu_us:.0f} · the counter increments on the "
                 f"audio path {ingest.counter_cost_us():.2f} µs/chunk, paid in all three"))
    plain, _, tapped = await ingest.tap_cost(sessions, chunks, rounds)
    rows.append(("1 ingest", f"same, {ingest.WATCHER} (goal ≥ 0.95x): chunks/s, CPU per chunk (µs), "
                 "alternating with an unwatched server",
                 f"{tapped.rate:,.0f} ({tapped.rate / plain.rate:.2f}x unwatched {plain.rate:,.0f}) · "
                 f"{tapped.cpu_us:.0f} (unwatched {plain.cpu_us:.0f})"))
    sizes = (1, 3) if quick else (1, 10, 100)
    burst = 3 if quick else 100
    runs2 = [(n, 2 if quick else max(2, 30 // n), False) for n in sizes] + [(burst, 1, True)]
    think = (0.2, 0.5) if quick else (2.0, 4.0)
    for (n, _, is_burst), values in zip(runs2, await turns.turn_overhead(runs2, think), strict=True):
        measure = (f"same, {n} sessions stopping at the same instant (ms)" if is_burst else
                   f"stop-recording → ai-response, stub 0 ms, {n} sessions, {think[0]:g}-{think[1]:g} s "
                   "between a session's turns (ms)")
        rows.append(("2 turn overhead", measure, _stats(values)))
    runs = 2 if quick else 10
    streaming = await latency.first_audio("streaming", runs)
    sequential = await latency.first_audio("default", runs)
    ratio = statistics.median(streaming) / statistics.median(sequential)
    rows.append(("3 time to first audio", "streaming graph, stop → first chunk (ms)", _stats(streaming)))
    rows.append(("3 time to first audio", "sequential graph, stop → ai-response (ms)", _stats(sequential)))
    rows.append(("3 time to first audio", "ratio of p50s", f"{ratio:.2f}"))
    to_last, to_upstream = await latency.barge_in(runs + 1)
    rows.append(("4 barge-in", "interrupt → last event of the stale reply (ms)", _stats(to_last)))
    rows.append(("4 barge-in", "interrupt → upstream request cancelled (ms)", _stats(to_upstream)))
    steps = await (turns.capacity((5,), 4.0, turn_every_s=0.5) if quick else
                   turns.capacity((25, 50, 100, 150, 200, 300, 400), 8.0))
    passed = [st.sessions for st in steps if st.ok]
    rows.append(("5 capacity", "most real-time sessions (25 chunks/s each, a turn every ~20 s) with turn p99 "
                 f"≤ {turns.TURN_P99_MS:.0f} ms and no backlog",
                 f"{max(passed) if passed else 0}" + (" (every step passed)" if steps[-1].ok else "")))
    for st in steps:
        rows.append(("5 capacity", "step", st.describe() + (" ✓" if st.ok else " ✗")))
    n = 5 if quick else 100
    idle, streaming = await memory.per_session(n)
    rows.append(("6 memory", f"server RSS per idle session / per streaming session, {n} sessions (KiB)",
                 f"{idle:.0f} / {streaming:.0f}"))
    rtf = await latency.real_time_factors()
    rows.append(("7 offline providers", "pocketsphinx STT real-time factor", f"{rtf['stt_rtf']:.3f}"))
    rows.append(("7 offline providers", "piper TTS + MP3 real-time factor", f"{rtf['tts_rtf']:.3f}"))
    for silence_ms in ((700,) if quick else (300, 700, 1000)):
        delays = await asyncio.to_thread(endpointing.finalization_delays, silence_ms)
        rows.append(("8 endpointing", f"end of speech → utterance closed, silence_ms={silence_ms} (audio ms)",
                     _stats(delays)))
    rows += await cancel.rows(cancels=4 if quick else 50, compare=not quick)
    rows += await cluster_rows(quick)
    rows += await speculation_rows(2 if quick else 50)
    rows += await asyncio.to_thread(turn_detector_rows)
    return rows


async def cluster_rows(quick: bool) -> list[Row]:
    """Scenario 11: 1 vs 2 workers behind HAProxy, and reconnecting after a worker is killed."""
    import shutil

    from flow.bench import cluster

    name = "11 cluster"
    missing = [exe for exe in ("redis-server", "haproxy") if shutil.which(exe) is None]
    if missing:
        return [(name, "skipped", f"needs {' and '.join(missing)} (apt-get install redis-server haproxy)")]
    rows: list[Row] = []
    if quick:
        steps, seconds, every = {1: (4,), 2: (8,)}, 4.0, 0.5
    else:
        steps = {1: (25, 50, 75, 100, 125, 150), 2: (50, 75, 100, 125, 150, 175, 200, 250)}
        seconds, every = 8.0, turns.TURN_EVERY_S
    best: dict[int, int] = {}
    for workers, climbed in (await cluster.capacity(steps, seconds, every)).items():
        passed = [st.sessions for st in climbed if st.ok]
        best[workers] = max(passed) if passed else 0
        rows.append((name, f"most real-time sessions with turn p99 ≤ {turns.TURN_P99_MS:.0f} ms, {workers} "
                     "worker(s) behind HAProxy", f"{best[workers]}" + (" (every step passed)" if climbed[-1].ok
                                                                       else "")))
        for st in climbed:
            rows.append((name, f"step, {workers} worker(s)", st.describe() + (" ✓" if st.ok else " ✗")))
    ratio = best[2] / best[1] if best.get(1) else float("nan")
    rows.append((name, "2 workers / 1 worker (the goal on 2 cores: ≥ 1.7; clients, stub, HAProxy and Redis "
                 "share those cores)", f"{ratio:.2f}"))
    n = 6 if quick else 40
    after_reconnect, after_kill = await cluster.reconnect(n)
    rows.append((name, f"worker SIGKILLed, {n} conversations on 2 workers: its clients' reconnect → next reply "
                 "(ms)", _stats(after_reconnect)))
    rows.append((name, "same, kill → next reply (ms; client reconnection delay 0.1-0.5 s)", _stats(after_kill)))
    return rows


def turn_detector_rows() -> list[Row]:
    """Energy, webrtc, silero, each with and without Smart Turn (needs the `[turn]` extra)."""
    try:
        from flow.bench import turn_detectors
        from nodes.smart_turn import model_path
        from nodes.voice_activity import silero_available

        model_path()
        silero_available()
    except ValueError as err:
        return [("13 turn detectors", "not measured", str(err))]
    cond = ("piper + espeak-ng, white noise at -40 dBFS, 3 sentences each, whole and with a 1 s pause; "
            "silence_ms 700, speculate_after_ms 250, hesitation_ms 1500; audio time")
    return [("13 turn detectors", f"{name} ({cond})", figures) for name, figures in turn_detectors.measure()]


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores {model}, "
            f"Python {platform.python_version()}")


def table(rows: list[Row]) -> str:
    lines = ["| scenario | measure | figures |", "| --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def main(quick: bool = False, out: str | None = "BENCHMARKS.md", only_cluster: bool = False) -> int:
    rows = asyncio.run(cluster_rows(quick) if only_cluster else collect(quick))
    text = table(rows)
    print(text)
    if out:
        when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        Path(out).write_text(f"# voicegraph benchmarks\n\n{machine()}; {when}; "
                             f"{'quick' if quick else 'full'} run of `voicegraph bench`.\n\n{text}\n")
    return 0
