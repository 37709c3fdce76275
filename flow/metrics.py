"""What a running server tells Prometheus (`GET /metrics`), with `prometheus-client`.

One `Metrics` per `Resources` (so per server), each with its own `CollectorRegistry`: tests and
benchmarks start several servers in one process, and the library's global registry would mix
them (or refuse the second server's metrics as duplicates).

The audio path pays only counter increments (a lock and an addition each). Whatever can be read
off state the server keeps anyway is read at scrape time instead: the sessions connected, and the
per-node message counters the runtime already keeps for the dashboard (`SessionContext.counters`),
summed over live sessions plus those of sessions already closed (`retire`), so the counters only
ever grow, as Prometheus expects.

Turn stages come from the interrupt gate's `turn-metrics` (the same figures the streaming graph
sends its clients): each stage in seconds after the user stopped speaking (voice turns) or after
the turn was accepted (text turns).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

STAGES = ("endpointed", "transcript", "accepted", "first_token", "first_audio", "last_audio")
"""The `turn-metrics` stages that get a histogram (`cancelled` and `last_token` are left out:
the first is an outcome, the second rarely differs from `first_audio` on a streamed reply)."""
STAGE_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
PROVIDER_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
LAG_INTERVAL_S = 0.5
"""How often the loop-lag probe wakes up (its sleep overshoot is the lag)."""
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _NodeCounters(Collector):
    """`voicegraph_node_messages_total{node, counter}` read at scrape time from `source()`."""

    def __init__(self, source: Callable[[], Mapping[str, Mapping[str, int]]]) -> None:
        self.source = source

    def describe(self) -> list[Any]:
        return [CounterMetricFamily("voicegraph_node_messages", "Messages per node and port "
                                    "(in.<port>: arrived on an input; out, errors, dropped…: what the node counts)",
                                    labels=["node", "counter"])]

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("voicegraph_node_messages", "Messages per node and port "
                                     "(in.<port>: arrived on an input; out, errors, dropped…: what the node counts)",
                                     labels=["node", "counter"])
        for node, counts in sorted(self.source().items()):
            for what, n in sorted(counts.items()):
                family.add_metric([node, what], n)
        yield family


class Metrics:
    """The server's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.sessions = Gauge("voicegraph_sessions", "Sessions connected now", registry=r)
        self.connects = Counter("voicegraph_sessions_opened", "Sessions opened since start", registry=r)
        self.turns = Counter("voicegraph_turns", "Turns ended, by source (voice, text) and outcome "
                             "(answered, cancelled, failed)", ["source", "outcome"], registry=r)
        self.stage = Histogram("voicegraph_turn_stage_seconds", "When each stage of a turn happened, after the "
                               "user stopped speaking (voice) or the turn was accepted (text)",
                               ["stage", "source"], buckets=STAGE_BUCKETS, registry=r)
        self.provider = Histogram("voicegraph_provider_call_seconds", "Provider calls, whole (a streamed LLM "
                                  "reply to its last token), by provider, kind (stt, llm, tts) and outcome",
                                  ["provider", "kind", "outcome"], buckets=PROVIDER_BUCKETS, registry=r)
        self.loop_lag = Histogram("voicegraph_event_loop_lag_seconds", "How late the event loop woke a "
                                  f"{LAG_INTERVAL_S:g} s timer", buckets=LAG_BUCKETS, registry=r)
        self.errors = Counter("voicegraph_errors", "error events sent to clients and refused connects, by code",
                              ["code"], registry=r)
        self.audio_seconds = Counter("voicegraph_audio_received_seconds", "Seconds of client audio decoded",
                                     registry=r)
        self.bytes_in = Counter("voicegraph_received_bytes", "Bytes of client audio received", registry=r)
        self.bytes_out = Counter("voicegraph_sent_bytes", "Bytes of events handed to clients (payload sizes as "
                                 "the outbox counts them: base64 audio as text)", registry=r)
        self._retired: dict[str, dict[str, int]] = {}
        self._live: Callable[[], Mapping[str, Mapping[str, int]]] = dict
        r.register(_NodeCounters(self.node_counters))

    # ---------------------------------------------------------------- per-node counters

    def count_nodes_of(self, live: Callable[[], Mapping[str, Mapping[str, int]]]) -> None:
        """Where the live sessions' per-node counters are (the server's sessions)."""
        self._live = live

    def retire(self, counters: Mapping[str, Mapping[str, int]]) -> None:
        """Keep a closing session's per-node counters in the totals."""
        for node, counts in counters.items():
            mine = self._retired.setdefault(node, {})
            for what, n in counts.items():
                mine[what] = mine.get(what, 0) + n

    def node_counters(self) -> dict[str, dict[str, int]]:
        total = {node: dict(counts) for node, counts in self._retired.items()}
        for node, counts in self._live().items():
            mine = total.setdefault(node, {})
            for what, n in counts.items():
                mine[what] = mine.get(what, 0) + n
        return total

    # ---------------------------------------------------------------- turns and providers

    def turn_ended(self, metrics: Mapping[str, Any], outcome: str) -> None:
        """A turn's `turn-metrics` payload (`ms` after its origin) and how it ended."""
        source = str(metrics.get("source") or "unknown")
        self.turns.labels(source, outcome).inc()
        ms = metrics.get("ms") or {}
        for stage in STAGES:
            at = ms.get(stage)
            if isinstance(at, int | float) and at >= 0:
                self.stage.labels(stage, source).observe(at / 1000.0)

    @contextlib.contextmanager
    def provider_call(self, kind: str, provider: str) -> Iterator[None]:
        """Time the call inside; a cancelled call (barge-in) is not a latency and is not observed."""
        start = time.perf_counter()
        try:
            yield
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except BaseException:
            self.provider.labels(provider, kind, "error").observe(time.perf_counter() - start)
            raise
        self.provider.labels(provider, kind, "ok").observe(time.perf_counter() - start)

    async def watch_loop(self) -> None:
        """Observe the event loop's lag forever (a task of the server)."""
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(LAG_INTERVAL_S)
            self.loop_lag.observe(max(0.0, loop.time() - start - LAG_INTERVAL_S))

    def exposition(self) -> bytes:
        """The Prometheus text format of everything above."""
        return generate_latest(self.registry)
