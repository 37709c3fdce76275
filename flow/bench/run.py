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
from collections.abc import Awaitable, Callable
from pathlib import Path

from flow.bench import cancel, endpointing, figures, ingest, latency, memory, speculation, turns

Row = tuple[str, str, str]  # scenario, measure, figures


def _stats(values: list[float], **conds: object) -> str:
    """A latency row's figures (kept under this name for rows added elsewhere): see `figures`."""
    return figures.latency_row(values, **conds)  # type: ignore[arg-type]


ECHO = "You said: hello there. Here is my answer."
"""The stub's default reply to the default transcript (the turn-overhead rows' reply)."""
PCM = "pcm16 16 kHz"


async def speculation_rows(runs: int, clients: int = 1) -> list[Row]:
    """Default vs fast (and streaming vs fast_streaming) on the same stub, speech in real time,
    `clients` sessions asking at once."""
    rows: list[Row] = []
    conds = {"stub": "STT 300 / first token 350 / 20 per token / TTS 250 ms", "codec": PCM, "sessions": clients,
             "silence_ms": 700, "speech": "real time"}
    for base, fast in (("default", "fast"), ("streaming", "fast_streaming")):
        plain, _, _ = await speculation.first_audio(base, runs, clients=clients)
        quick, thrown, thrown_paused = await speculation.first_audio(fast, runs, paused_runs=max(1, runs // 2),
                                                                     clients=clients)
        rows.append(("12 speculation", f"end of speech → first audio, {base} graph (ms)", _stats(plain, **conds)))
        rows.append(("12 speculation", f"same, {fast} graph (speculate_after_ms 250) (ms)",
                     _stats(quick, **conds)))
        if plain and quick:
            p50, fast50 = statistics.median(plain), statistics.median(quick)
            floor = max(700, 250 + p50 - 700)  # the provider path is what the base graph adds to silence_ms
            rows.append(("12 speculation", f"{fast}: ratio of p50s; floor max(silence_ms, speculate_after_ms "
                         "+ provider path)", f"{fast50 / p50:.2f}; floor {floor:.0f}, p50 {fast50 - floor:+.0f}"))
        rows.append(("12 speculation", f"{fast}: provider requests cancelled per committed turn",
                     f"no pause {thrown:.1f} · a 450 ms mid-sentence pause {thrown_paused:.1f} "
                     f"(n={runs} / {max(1, runs // 2)} turns)"))
    return rows


async def ingest_rows(quick: bool) -> list[Row]:
    """Scenario 1: chunks/s against bare python-socketio, watched, scraped, recorded, tapped."""
    rows: list[Row] = []
    sessions, chunks = (2, 200) if quick else (10, 1500)
    rounds = 1 if quick else 3
    bare, ours = await ingest.compare(sessions, chunks, rounds)
    rows.append(("1 ingest", f"chunks/s, {sessions} sessions flooding, median of {rounds} (servers in their "
                 "own processes)", f"bare python-socketio {bare.rate:,.0f} · voicegraph {ours.rate:,.0f} · "
                 f"ratio {ours.rate / bare.rate:.2f}"))
    rows.append(("1 ingest", "server CPU per chunk (µs)",
                 f"bare {bare.cpu_us:.0f} · voicegraph {ours.cpu_us:.0f}"))
    bare_webm, ours_webm = await ingest.compare_webm(sessions, chunks, rounds)
    rows.append(("1 ingest", "same with webm/opus chunks as MediaRecorder slices them (40 ms each, header in the "
                 "first): chunks/s; server CPU per chunk with any decoder processes (µs)",
                 f"bare python-socketio {bare_webm.rate:,.0f} · voicegraph {ours_webm.rate:,.0f} · ratio "
                 f"{ours_webm.rate / bare_webm.rate:.2f} · CPU bare {bare_webm.cpu_us:.0f} · voicegraph "
                 f"{ours_webm.cpu_us:.0f}"))
    plain, scraped, recorded = await ingest.observed(sessions, chunks, rounds)
    rows.append(("1 ingest", f"same, /metrics scraped every 1 s · every session recorded to disk (--record): "
                 f"chunks/s, CPU per chunk (µs), median of {rounds}",
                 f"not scraped, not recorded {plain.rate:,.0f}, {plain.cpu_us:.0f} · scraped {scraped.rate:,.0f} "
                 f"({scraped.rate / plain.rate:.2f}x), {scraped.cpu_us:.0f} · recorded {recorded.rate:,.0f} "
                 f"({recorded.rate / plain.rate:.2f}x), {recorded.cpu_us:.0f} · the counter increments on the "
                 f"audio path {ingest.counter_cost_us():.2f} µs/chunk, paid in all three"))
    plain, watched, tapped = await ingest.tap_cost(sessions, chunks, rounds)
    rows.append(("1 ingest", f"same, {ingest.OPENED}: chunks/s, CPU per chunk (µs), alternating with an "
                 "unwatched server", f"{watched.rate:,.0f} ({watched.rate / plain.rate:.2f}x unwatched) · "
                 f"{watched.cpu_us:.0f}"))
    rows.append(("1 ingest", f"same, {ingest.WATCHER} (goal ≥ 0.95x): chunks/s, CPU per chunk (µs), "
                 "alternating with an unwatched server",
                 f"{tapped.rate:,.0f} ({tapped.rate / plain.rate:.2f}x unwatched {plain.rate:,.0f}) · "
                 f"{tapped.cpu_us:.0f} (unwatched {plain.cpu_us:.0f})"))
    return rows


async def turn_overhead_rows(quick: bool) -> list[Row]:
    """Scenario 2: stop-recording → ai-response, providers at 0 ms; the 100-session burst."""
    rows: list[Row] = []
    # full: ≥ 100 turns per row (a real p99); one session thinks less between turns, or its 120
    # turns alone would take 6 minutes (think time does not load one session's server)
    think = (0.2, 0.5) if quick else (2.0, 4.0)
    runs2 = ([(1, 2, False, think), (3, 2, False, think), (3, 1, True, think)] if quick else
             [(1, 120, False, (0.5, 1.0)), (10, 12, False, think), (100, 2, False, think), (100, 1, True, think)])
    for (n, _, is_burst, th), values, fleet, stub_cpu, server_cpu in zip(
            runs2, await turns.turn_overhead(runs2), turns.FLEET_CPU, turns.STUB_CPU, turns.SERVER_CPU, strict=True):
        measure = (f"same, {n} sessions stopping at the same instant (ms; where the time goes: see the notes "
                   "below the table)" if is_burst else
                   "stop-recording → ai-response (ms)")
        floor = None if is_burst or not turns.FLOOR else statistics.median(turns.FLOOR)
        rows.append(("2 turn overhead", measure, _stats(
            values, floor=floor, stub="0 ms", reply=figures.reply_words(ECHO), codec=PCM, sessions=n,
            think="none (all at once)" if is_burst else f"{th[0]:g}-{th[1]:g} s",
            CPU=f"server {100 * server_cpu:.0f}% / stub {100 * stub_cpu:.0f}% / client fleet {100 * fleet:.0f}%")))
    if turns.FLOOR:
        rows.append(("2 turn overhead", "the floor above: the three provider calls as voicegraph makes them plus one "
                     "Socket.IO round trip, back to back from a bare process (ms)", _stats(
                         turns.FLOOR, stub="0 ms", reply=figures.reply_words(ECHO), codec=PCM, sessions=1)))
    return rows


async def first_audio_rows(quick: bool) -> list[Row]:
    """Scenario 3: stop → first audio, streaming vs sequential graph, realistic stub."""
    rows: list[Row] = []
    runs = 1 if quick else 10
    streaming = await latency.first_audio("streaming", runs)
    sequential = await latency.first_audio("default", runs)
    ratio = statistics.median(streaming) / statistics.median(sequential)
    conds = dict(stub=latency.REALISTIC, reply=figures.reply_words(latency.THREE), codec=PCM, sessions=1,
                 think="0.25 s")
    rows.append(("3 time to first audio", "streaming graph, stop → first chunk (ms)",
                 _stats(streaming, floor=1000 * latency.floor_s("streaming"), **conds)))
    rows.append(("3 time to first audio", "sequential graph, stop → ai-response (ms)",
                 _stats(sequential, floor=1000 * latency.floor_s("default"), **conds)))
    rows.append(("3 time to first audio", "ratio of p50s (a property of this reply's length and the stub's "
                 "latencies, not of voicegraph alone)", f"{ratio:.2f}"))
    return rows


async def barge_in_rows(quick: bool) -> list[Row]:
    """Scenario 4: interrupt → the stale reply stops, at the client and upstream."""
    rows: list[Row] = []
    to_last, to_upstream = await latency.barge_in(3 if quick else 11)
    conds = dict(stub=latency.REALISTIC, reply=figures.reply_words(3 * (latency.THREE + " ")), codec="text",
                 sessions=1)
    rows.append(("4 barge-in", "interrupt → last event of the stale reply at the client (ms; in practice the "
                 "round trip of `response-cancelled`)", _stats(to_last, **conds)))
    rows.append(("4 barge-in", "interrupt → upstream request cancelled (ms)", _stats(to_upstream, **conds)))
    return rows


async def capacity_rows(quick: bool) -> list[Row]:
    """Scenario 5: most real-time sessions one process holds, PCM16 and webm/opus."""
    rows: list[Row] = []
    # full: each step long enough for ≥ 100 turns (58 s at 50 sessions, 10 s at 400); the 100-session
    # webm step (the goal: ≥ 100 real-time webm sessions per process) runs even if 50 failed
    for codec, full in (("pcm16", (50, 100, 150, 200, 300, 400)), ("webm", (50, 100, 150, 200))):
        # quick: 4.5 s of PCM16 holds a turn (the question takes 3 s); a webm recording is its silence
        # plus the 3 s question
        steps = await (turns.capacity((5,), 4.5 if codec == "pcm16" else 5.0, turn_every_s=0.5, codec=codec,
                                      min_turns=0) if quick else
                       turns.capacity(full, 8.0, codec=codec, through=100 if codec == "webm" else 0))
        passed = [st.sessions for st in steps if st.ok]
        what = ("PCM16 16 kHz, 25 chunks/s each, a turn every ~20 s" if codec == "pcm16" else
                "webm/opus as MediaRecorder slices it (40 ms a chunk, header in the first), one recording "
                "per turn: ~20 s of silence then the question")
        rows.append(("5 capacity", f"most real-time sessions ({what}; stub 0 ms; reply "
                     f"{figures.reply_words(ECHO)}) with turn p99 ≤ {turns.TURN_P99_MS:.0f} ms, no backlog and "
                     "clients keeping real time; server process, stub and client fleet each in its own process",
                     f"{max(passed) if passed else 0}" + (" (every step passed)" if steps[-1].ok else "")))
        for st in steps:
            rows.append(("5 capacity", f"step, {codec}", st.describe() + (" ✓" if st.ok else " ✗")))
    return rows


async def memory_rows(quick: bool) -> list[Row]:
    """Scenario 6: server RSS per idle and per streaming session, PCM16 and webm/opus."""
    rows: list[Row] = []
    n = 5 if quick else 100
    for codec in ("pcm16", "webm"):
        idle, streaming, decoders = await memory.per_session_codec(n, codec)
        rows.append(("6 memory", f"server RSS per idle session / per streaming session, {n} sessions, {codec} (KiB"
                     + ("; with any decoder processes' private memory)" if codec == "webm"
                        else ")"),
                     f"{idle:.0f} / {streaming:.0f}" + (f" · {decoders} decoder processes while streaming"
                                                        if codec == "webm" else "")))
    return rows


async def offline_rows(quick: bool) -> list[Row]:
    """Scenario 7: pocketsphinx and piper real-time factors."""
    rows: list[Row] = []
    rtf = await latency.real_time_factors(1 if quick else 9)
    k = rtf["runs"]
    rows.append(("7 offline providers", f"pocketsphinx STT real-time factor, median of {k} calls after the first "
                 f"({rtf['stt_audio_s']:.1f} s question)", f"{rtf['stt_rtf']:.3f} (max {rtf['stt_rtf_max']:.3f})"))
    rows.append(("7 offline providers", f"piper TTS + MP3 real-time factor, median of {k} calls after the first "
                 f"({rtf['tts_audio_s']:.1f} s reply)", f"{rtf['tts_rtf']:.3f} (max {rtf['tts_rtf_max']:.3f})"))
    return rows


async def endpointing_rows(quick: bool) -> list[Row]:
    """Scenario 8: end of speech → utterance closed, per silence_ms."""
    rows: list[Row] = []
    for silence_ms in ((700,) if quick else (300, 700, 1000)):
        delays = await asyncio.to_thread(endpointing.finalization_delays, silence_ms)
        rows.append(("8 endpointing", f"end of speech → utterance closed, silence_ms={silence_ms} (audio ms)",
                     _stats(delays, codec=PCM, sessions=1)))
    return rows


async def cancel_rows(quick: bool) -> list[Row]:
    """Scenario 9: how soon cancelled offline work lets go of the CPU pool."""
    return await cancel.rows(cancels=2 if quick else 50, compare=not quick)


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
        steps, seconds, every, min_turns = {1: (4,), 2: (8,)}, 4.5, 0.5, 0  # the question takes 3 s
    else:  # each step long enough for ≥ 100 turns (a real p99): 58 s at 50 sessions, 12 s at 300
        steps = {1: (50, 75, 100, 150, 200), 2: (50, 75, 100, 125, 150, 200, 250, 300)}  # same first step: a ratio
        seconds, every, min_turns = 8.0, turns.TURN_EVERY_S, turns.MIN_TURNS
    best: dict[int, int] = {}
    for workers, climbed in (await cluster.capacity(steps, seconds, every, min_turns)).items():
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
                 "(ms)", _stats(after_reconnect, stub="0 ms", codec="text", sessions=n)))
    rows.append((name, "same, kill → next reply (ms; client reconnection delay 0.1-0.5 s)",
                 _stats(after_kill, stub="0 ms", codec="text", sessions=n)))
    return rows


def _turn_detector_rows(pairs: int) -> list[Row]:
    """Energy, webrtc, silero, each with and without Smart Turn (needs the `[turn]` extra)."""
    try:
        from flow.bench import turn_detectors
        from nodes.smart_turn import model_path
        from nodes.voice_activity import silero_available

        model_path()
        silero_available()
    except ValueError as err:
        return [("13 turn detectors", "not measured", str(err))]
    cond = (f"piper + espeak-ng, white noise at -40 dBFS, {pairs} sentence{'s' if pairs > 1 else ''} each, "
            "whole and with a 1 s pause; silence_ms 700, speculate_after_ms 250, hesitation_ms 1500; audio time")
    return [("13 turn detectors", f"{name} ({cond})", figures) for name, figures in turn_detectors.measure(pairs)]


async def turn_detector_rows(quick: bool) -> list[Row]:
    """Scenario 13, off the loop; quick: one sentence in each voice instead of three."""
    from flow.bench.turn_detectors import PAIRS

    return await asyncio.to_thread(_turn_detector_rows, 1 if quick else len(PAIRS))


SCENARIOS: dict[str, Callable[[bool], Awaitable[list[Row]]]] = {
    "1": ingest_rows, "2": turn_overhead_rows, "3": first_audio_rows, "4": barge_in_rows, "5": capacity_rows,
    "6": memory_rows, "7": offline_rows, "8": endpointing_rows, "9": cancel_rows, "11": cluster_rows,
    "12": lambda quick: speculation_rows(1) if quick else speculation_rows(50, clients=5), "13": turn_detector_rows,
}
"""Every scenario of the table by its number (10, the soak, runs alone: `--soak`)."""
SECONDS: dict[str, float] = {}
"""Wall time of each scenario of the last `collect`: what the run costs, and where."""


async def collect(quick: bool, only: list[str] | None = None) -> list[Row]:
    """The rows of `only` (scenario numbers; default all), each scenario timed into `SECONDS`
    and its time printed to stderr as it ends, so a slow scenario is seen while the run goes on."""
    import sys
    import time

    rows: list[Row] = []
    SECONDS.clear()
    for name in only or list(SCENARIOS):
        started = time.monotonic()
        rows += await SCENARIOS[name](quick)
        SECONDS[name] = time.monotonic() - started
        print(f"bench: scenario {name} took {SECONDS[name]:.0f} s", file=sys.stderr, flush=True)
    return rows


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


NOTES = """## Reading the table

- Latency rows: `n`, p50, p90, and p99 only from n ≥ 100 (nearest rank: below that p99 is the
  maximum, so the row says `max`). The conditions are in brackets: the stub's latencies, the
  reply's length, the codec, the sessions, the think time, and where measured the CPU share of
  the server (with its decoder children), the stub's process and the client fleet's process.
  A client fleet near 100% means the figure is the load generator's limit, not the server's.
- `ours - floor`: first audio minus the provider floor, the stub's configured critical path (STT,
  first token, the tokens up to the first sentence or the whole reply, TTS): what voicegraph adds.
- Burst (100 sessions stopping at once, providers at 0 ms): profiled with `voicegraph bench
  --profile burst`, the server is CPU-bound for the whole burst. With the SDK's default transport
  about half of its samples were inside the OpenAI SDK's request path (about 300 requests: STT,
  chat, TTS per turn), and a sixth of all samples httpcore's connection pool checking every pooled
  connection (`has_expired` → `getpeername`/`is_socket_readable`) each time a request starts or a
  response closes, which grows with the square of concurrent requests. voicegraph's own code is
  under a tenth: the reply's sentence splitting (`nodes/text_split.py`, ~6%), the graph's edges
  (~7%), logging (~2%). The client fleet and the stub used under a tenth of a core each, so the load
  generator is not the limit. The OpenAI client now speaks through the SDK's aiohttp transport
  (`nodes/openai_http.py`): same scenario, same machine, 9 bursts each way interleaved, the median
  of the bursts' p50 went from ~1050 to ~660 ms. Then the provider calls went through the SDK's
  generic `post` (streamed chat chunks stay plain dicts instead of one pydantic model per token;
  no deep copy of uploads, no answer models) and the sentence splitter stopped running pysbd on
  every token: the slowest reply of a burst, median of 9 bursts, went from ~550 to ~370 ms, server
  CPU per turn from 5.5 to 4.1 ms. What is left is mostly the SDK's request building (httpx's
  `build_request`, URL parsing, headers: ~18% of the burst's samples). On a machine shared with
  other load the burst is several times slower: it is CPU-bound.
- Turn overhead: the floor row is what a turn costs without voicegraph around it (its three
  provider calls through the real SDK to the same stub, and one Socket.IO round trip, from a bare
  process): p50 6-8 ms on this machine, so one isolated turn (9-10 ms) is 1-4 ms of ours. Each
  request or frame that wakes an idle peer process costs 0.1-0.4 ms in the send call alone on this
  VM (profile of the server: `socket.send` ~2 ms of its ~6.5 ms CPU per turn, 21 sends), the SDK's
  request building and the HTTP client ~2 ms more. At 100 sessions the tail (p90 ~2x p50) is turns
  colliding on the same two cores with the stub and the client fleet. Not garbage collection: with
  automatic collection off in the server (gc threshold 0) the 100-session p99 was 27-38 ms, as with
  it on (31-45 ms); full collections of 20-70 ms do happen there (the graphs of sessions that come
  and go: ~1,650 tracked objects per session; one collection after 100 sessions closed freed ~33,000).
- Ingest: python-socketio's generic dispatch of a binary event (a packet object, the attachment
  reassembled, the handler looked up and awaited) is skipped for the exact `audio-stream` packet
  the official clients send (the door hands the attachment to the session), and the websocket's
  silence check is one timer per connection, not a timeout per frame: 78 -> 53 µs CPU per chunk.
  Then engine.io's websocket loop itself (`flow/transport/frames.py`): python-engineio reads every
  frame through a new task awaited under `asyncio.wait_for` (a task, a timer, a future and two more
  turns of the loop per frame, two frames per chunk; ~17 % of the loop's samples at 100 real-time
  webm sessions); ours awaits the next frame directly: 52 -> 25 µs per chunk. That is why the ratio
  is above 1: bare python-socketio still pays engine.io's loop.
- webm/opus: decoded in-process (PyAV's libopus, one shared decoding thread, hand-offs batched);
  until 2026-11-29 it was one ffmpeg process per recording: capacity 0 sessions (50: p99 351 ms,
  100: p99 808 ms at 94 % CPU), 330 µs per ingested chunk, 4,610 KiB per streaming session. Since
  the same date the capacity clients start their first webm recording after a random wait and
  each keeps its own 40 ms clock phase: before, every session that drew the same recording
  stopped at the same instant (bursts of ~14 turns) and all chunks arrived in the same instant.
- The 100-session webm step sat at the goal's edge until 2026-11-29 (p99 31, 115 and 46 ms in
  three runs; n ≈ 146, so p99 is the second-worst turn), decided by garbage collections in the
  server (gc callback): full ones of 22-94 ms, 1-5 in a step. Three changes, each measured with
  the callback over 111 s of turns at 100 sessions: the frame loop above (a task and a future less
  per frame: young collections 293 -> 55, full 2 -> 1); a recording and its decoder no longer
  refer to each other, so a turn leaves nothing to the collector (37 objects before: libopus
  contexts, resampler graphs, frames; one young collection freed ~6,700 of them in 33 ms); young
  collections every 2,000 allocations instead of 700 in `voicegraph serve` (full collections during
  the turns: one or two of 54-94 ms in each of 4 runs at 700, none in 4 runs at 2,000; young
  ones under 3 ms). A full collection still walks every connected session's graph (~1,500
  tracked objects each in the server: Rx subjects, observers, disposables and their locks),
  50-70 ms at 100 sessions; it now comes minutes apart instead of seconds, when sessions come and
  go.
- Cluster ratio: since 2026-11-29 one worker passes every step of the grid, up to 200 sessions
  (an audio chunk costs 25 µs; it was 79 when one worker stopped at 75), so its figure is a floor
  and the ratio an upper bound. Two workers on the same 2 cores do worse than one (125-150): the
  second server process, HAProxy and Redis compete for those cores with the client fleet and the
  stub, and nothing is gained from a second core because there is none free. The ratio cannot show
  scaling on 2 cores; it needs cores for the second worker that the load generators do not use.
"""


def main(quick: bool = False, out: str | None = "BENCHMARKS.md", only_cluster: bool = False,
         profile: str | None = None, only: list[str] | None = None) -> int:
    import sys

    if profile:
        return profile_scenario(profile, quick)
    only = ["11"] if only_cluster else only
    unknown = [name for name in only or [] if name not in SCENARIOS]
    if unknown:
        print(f"unknown scenario {', '.join(unknown)}; one of: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    rows = asyncio.run(collect(quick, only))
    text = table(rows)
    print(text)
    took = " · ".join(f"{name} {s:.0f}" for name, s in SECONDS.items())
    print(f"run time per scenario (s): {took}; total {sum(SECONDS.values()):.0f}")
    if out:
        when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        what = f"scenarios {', '.join(only)} of a " if only else ""
        Path(out).write_text(f"# voicegraph benchmarks\n\n{machine()}; {when}; {what}"
                             f"{'quick' if quick else 'full'} run of `voicegraph bench`.\n\n{text}\n\n"
                             f"Run time per scenario (s): {took}; total {sum(SECONDS.values()):.0f}.\n\n{NOTES}")
    return 0


PROFILES = {
    "burst": "100 sessions (3 with --quick) stop recording at the same instant, providers at 0 ms",
    "turns": "100 sessions (3 with --quick) take turns with 2-4 s between them, providers at 0 ms",
    "capacity": "100 real-time PCM16 sessions (5 with --quick) for 20 s, a turn every ~20 s each",
    "capacity-webm": "the same with webm/opus recordings (decoded in-process)",
    "ingest": "10 sessions flooding PCM16 chunks (2 with --quick)",
    "ingest-webm": "the same with webm/opus chunks",
    "first-audio": "the streaming graph, realistic stub latencies, 10 turns (2 with --quick)",
}


def profile_scenario(name: str, quick: bool) -> int:
    """`voicegraph bench --profile NAME`: one scenario with py-spy sampling the server process;
    the flame graph goes to `profile-NAME.svg` (py-spy needs ptrace: root, or
    kernel.yama.ptrace_scope=0, or CAP_SYS_PTRACE in a container)."""
    import shutil
    import sys

    from flow.bench import procs

    if name not in PROFILES:
        print(f"unknown scenario {name!r}; one of: " + ", ".join(f"{k} ({v})" for k, v in PROFILES.items()),
              file=sys.stderr)
        return 2
    if not (shutil.which("py-spy") or Path(sys.executable).with_name("py-spy").exists()):
        print("voicegraph bench --profile needs py-spy (pip install 'voicegraph[profile]')", file=sys.stderr)
        return 2
    procs.PROFILE = Path(f"profile-{name}.svg").resolve()
    n = 3 if quick else 100

    async def run() -> None:
        if name in ("burst", "turns"):
            print(await turns.turn_overhead([(n, 1, True)] if name == "burst" else [(n, 2, False)]))
        elif name.startswith("capacity"):
            for st in await turns.capacity((5 if quick else 100,), 6.0 if quick else 20.0, turn_every_s=0.5
                                           if quick else turns.TURN_EVERY_S, min_turns=0,
                                           codec="webm" if name.endswith("webm") else "pcm16"):
                print(st.describe())
        elif name.startswith("ingest"):
            sessions, chunks = (2, 200) if quick else (10, 1500)
            async with ingest.voicegraph_process() as (url, pid):
                print(await ingest.measured(url, pid, sessions, chunks,
                                            codec="webm" if name.endswith("webm") else "pcm16"))
        else:
            print(figures.spread(await latency.first_audio("streaming", 2 if quick else 10)))

    asyncio.run(run())
    return 0 if procs.PROFILE.exists() else 1
