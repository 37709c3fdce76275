"""Fuzz every client event with hypothesis through a real server: whatever a client sends, the
server answers with events (or `error`s), logs no traceback, and the session still finishes a
normal turn afterwards. Seeded, a few thousand inputs per run."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from flow import heap
from flow.testing.client import Recorder
from flow.testing.memory import rss_mb
from flow.testing.openai_stub import OpenAIStub
from flow.testing.servers import voicegraph

EVENTS = ("start-recording", "audio-stream", "stop-recording", "text-message", "interrupt")
RESERVED = ("connect", "disconnect", "*", "connect_error", "message")
"""Names python-socketio reserves: as client events they must be refused, never act."""
scalars = st.one_of(
    # integers within 64 bits: what a client's JSON encoder (orjson, once NiceGUI installed it) sends
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=60), st.binary(max_size=64),
)
payloads = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(
        st.sampled_from(["text", "mimeType", "format", "sampleRate", "channels", "language", "voice",
                         "responseId", "audio", "data", "chunk", "x"]), inner, max_size=4)),
    max_leaves=8,
)
audio_like = st.one_of(
    st.binary(min_size=1, max_size=4096),
    st.sampled_from([b"\x1aE\xdf\xa3" + bytes(200), b"OggS" + bytes(200), b"RIFF" + bytes(100), b"ID3" + bytes(64)]),
)
inputs = st.lists(st.one_of(
    st.tuples(st.sampled_from(EVENTS), payloads),
    st.tuples(st.just("audio-stream"), audio_like),
    st.tuples(st.one_of(st.text(min_size=1, max_size=30), st.sampled_from(RESERVED)), payloads),
), min_size=1, max_size=20)


async def one_client(url: str, sent: list[tuple[str, object]], tally: dict[str, int]) -> Recorder:
    c = await Recorder().connect(url)
    for event, payload in sent:
        if not c.sio.connected:
            break
        if payload is None:
            await c.sio.emit(event)
        else:
            await c.sio.emit(event, payload)
        tally["inputs"] += 1
    await asyncio.sleep(0.2)
    if not c.sio.connected:
        # the door disconnects a client that keeps sending malformed packets (e.g. more binary
        # attachments than an event has): it was told why, and a new connection is served
        assert {e["code"] for e in c.of("error")} >= {"bad_request"}, c.events[-5:]
        await c.close()
        c = await Recorder().connect(url)
    await c.emit("stop-recording")  # whatever recording the fuzz left open ends here
    await c.emit("text-message", "ping after fuzz")
    tally["crashes"] += 1  # until the server has answered
    ping = await c.wait("message-received", lambda p: p["text"] == "ping after fuzz", timeout=15)
    later = [p["id"] for p in c.of("message-received")]
    await c.wait("ai-response", lambda p: p["replyTo"] in later[later.index(ping["id"]):], timeout=15)
    tally["crashes"] -= 1
    return c


class Tracebacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


async def a_turn() -> None:
    async with OpenAIStub() as stub, voicegraph(stub=stub) as srv:
        c = await Recorder().connect(srv.url)
        await c.emit("text-message", "warm up")
        await c.wait("ai-response", timeout=15)
        await c.close()


@pytest.fixture
def fuzz_tally(figures):
    """Counts over every example of the fuzz, recorded as figures when it is over; and the process's
    memory before it (after one ordinary turn, so imports and first-use caches are not counted) and
    after it: every server the fuzz starts runs in this process."""
    tally = {"inputs": 0, "crashes": 0, "tracebacks": 0}
    asyncio.run(a_turn())
    # `voicegraph serve` trims the C heap every 30 s (flow/heap.py); these servers run in the test's
    # process, which has no trimmer, so both readings are taken right after a trim, as serve's would be
    gc.collect()
    heap.trim()
    before = rss_mb()
    yield tally
    gc.collect()
    heap.trim()
    grown = rss_mb() - before
    figures.hostile(tally["inputs"], tally["tracebacks"])
    figures.add("crashes", tally["crashes"], goal="0")
    figures.record("server memory after the fuzz vs before", grown, unit="MB", goal="≤ +50 MB",
                   part=f"{before:.0f} → {before + grown:.0f} MB")
    assert grown <= 50, f"the fuzz left the process {grown:.0f} MB larger"


@seed(20261128)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(batches=st.lists(inputs, min_size=1, max_size=2))
def test_any_client_input_leaves_the_server_answering(fuzz_tally, batches) -> None:
    tracebacks = Tracebacks()
    logging.getLogger().addHandler(tracebacks)

    async def run() -> None:
        async with OpenAIStub() as stub, voicegraph(stub=stub) as srv:
            clients = [await one_client(srv.url, sent, fuzz_tally) for sent in batches]
            for c in clients:
                await c.close()
            await asyncio.sleep(0.2)
            assert srv.server.sessions == {}, "a session outlived its connection"

    try:
        asyncio.run(run())
    finally:
        logging.getLogger().removeHandler(tracebacks)
        fuzz_tally["tracebacks"] += len(tracebacks.records)
    assert not tracebacks.records, [f"{r.name}: {r.getMessage()}" for r in tracebacks.records[:3]]

