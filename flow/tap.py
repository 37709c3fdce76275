"""The message tap: what flowed on each edge of a watched session, as monitoring events.

A session's graph gets one `TapPoint` (the runtime attaches it); every edge's delivery asks
`point.on` first, so a session nobody taps pays one attribute read per message and builds
nothing. A dashboard taps a session with `Tap.watch(sid)` (it may do so before the session
exists: the testbench watches its own session from its first message) and `unwatch`es it when
it stops looking. A tapped delivery becomes a `tap` event on the monitor with a short summary of
the message — never its bytes: audio and other binary fields are shown by their size — so the
monitor's per-observer bounds (events and bytes) bound it like every other event, and an
observer that keeps the last N records keeps them after the session closes.

Each record names what links it to a turn without anyone guessing later: its `turn` (or a
Cancel's `through_turn`), its utterance id and its recording, and its `cause`: the record that
was being delivered when this message was emitted, for messages a node emits synchronously while
handling another (a turn taker turning a transcript into turn 3). With those, "follow turn 3"
finds the audio, the utterance and the transcript that turn 3 came from.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flow.graph.spec import EdgeSpec
    from flow.monitor import Monitor

SUMMARY_CHARS = 160
"""Longest summary of one message; a longer one is cut and marked."""
TEXT_CHARS = 60
"""Most characters of one text field a summary quotes."""
RECORD_BYTES = 600
"""What one tap event costs beyond its summary and label (the event, its dict, the other values):
counted against the monitor's per-observer byte bound without walking the data."""
RUN_MAX = 25
"""Most audio messages one record stands for (a second of 40 ms chunks)."""
RUN_FLUSH_S = 0.25
"""A run of audio is published at the latest this long after it began."""
SKIPPED_FIELDS = frozenset({"session", "marks"})
"""Fields every record would repeat (the session) or that are timing details (`marks`)."""


class _Run:
    """Consecutive audio messages of one recording on one edge, recorded as one (see `TapPoint`)."""

    __slots__ = ("at_ms", "bytes", "cause", "count", "first", "kind", "recording", "seq")

    def __init__(self, seq: int, msg: Any, size: int, cause: int | None) -> None:
        self.seq, self.first, self.kind, self.recording = seq, msg, type(msg), msg.recording
        self.count, self.bytes, self.cause = 1, size, cause
        self.at_ms = time.time() * 1000
        """When its first message passed (the event is published later, when the run ends)."""


class TapPoint:
    """One session's tap: `on` while someone watches; `deliver` records and passes a message on.

    Audio (a message with a `recording` and a binary field, such as `AudioData` and `AudioChunk`)
    comes 25 times a second per edge: consecutive ones of one recording on one edge become one
    record ("25 messages, 32,000 B in all"), published when the run ends — another message is recorded, the run
    reaches `RUN_MAX` messages, or `RUN_FLUSH_S` passed — under the seq of its first message. So
    a tapped session's audio costs a counter increment per chunk, and the list stays readable.
    """

    __slots__ = ("_labels", "_runs", "_seq", "_stack", "_timer", "monitor", "on", "session")

    def __init__(self, monitor: Monitor, session: str, edges: list[EdgeSpec]) -> None:
        self.monitor = monitor
        self.session = session
        self.on = False
        self._labels = [f"{e.src}.{e.src_port} -> {e.dst}.{e.dst_port}" for e in edges]
        self._seq = 0
        self._stack: list[int] = []
        """Seqs of the deliveries in progress (innermost last): the cause of what is emitted now."""
        self._runs: dict[int, _Run] = {}
        self._timer: asyncio.TimerHandle | None = None

    def deliver(self, edge: int, msg: Any, on_next: Callable[[Any], None]) -> None:
        """Record `msg` on edge number `edge` of the graph (while tapped), then hand it on."""
        if not self.on or not self.monitor.watched:
            on_next(msg)
            return
        size = _stream_bytes(msg)
        if size is None:
            if self._runs:
                self.flush()
            seq = self._publish(edge, msg, type(msg).__name__, summarize(msg), self._stack[-1] if self._stack else None)
        else:
            run = self._runs.get(edge)
            if run is not None and run.kind is type(msg) and run.recording == msg.recording and run.count < RUN_MAX:
                run.count += 1
                run.bytes += size
            else:
                if run is not None:
                    self._end(edge)
                self._seq += 1
                run = self._runs[edge] = _Run(self._seq, msg, size, self._stack[-1] if self._stack else None)
                if self._timer is None:
                    self._timer = asyncio.get_running_loop().call_later(RUN_FLUSH_S, self.flush)
            seq = run.seq
        self._stack.append(seq)
        try:
            on_next(msg)
        finally:
            self._stack.pop()

    def flush(self) -> None:
        """Publish every run of audio in progress (and stop the timer that would have)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for edge in sorted(self._runs, key=lambda e: self._runs[e].seq):
            self._end(edge)

    def _end(self, edge: int) -> None:
        run = self._runs.pop(edge)
        summary = summarize(run.first)
        if run.count > 1:
            summary = _cut(f"{run.count} messages, {run.bytes:,} B in all; first: {summary}")
        self._publish(edge, run.first, run.kind.__name__, summary, run.cause, run.seq, run.at_ms)

    def _publish(self, edge: int, msg: Any, kind: str, summary: str, cause: int | None,
                 seq: int | None = None, at_ms: float | None = None) -> int:
        if seq is None:
            self._seq += 1
            seq = self._seq
        turn, utterance, recording = links(msg)
        label = self._labels[edge]
        self.monitor.publish_sized("tap", self.session, RECORD_BYTES + len(summary) + len(label), {
            "seq": seq, "edge": edge, "label": label, "type": kind, "turn": turn, "utterance": utterance,
            "recording": recording, "cause": cause, "summary": summary, "at_ms": at_ms})
        return seq


class Tap:
    """Which sessions of this process are tapped, and their points."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self._points: dict[str, TapPoint] = {}
        self._watchers: dict[str, int] = {}

    def attach(self, session: str, edges: list[EdgeSpec]) -> TapPoint:
        """The point of a new session's graph (already on if someone asked to watch it)."""
        point = TapPoint(self.monitor, session, edges)
        point.on = session in self._watchers
        self._points[session] = point
        return point

    def detach(self, point: TapPoint) -> None:
        point.flush()  # the session's last audio is shown too
        point.on = False
        if self._points.get(point.session) is point:
            del self._points[point.session]

    def watch(self, session: str) -> None:
        self._watchers[session] = self._watchers.get(session, 0) + 1
        if session in self._points:
            self._points[session].on = True

    def unwatch(self, session: str) -> None:
        left = self._watchers.get(session, 0) - 1
        if left > 0:
            self._watchers[session] = left
            return
        self._watchers.pop(session, None)
        if session in self._points:
            self._points[session].flush()
            self._points[session].on = False

    def watched(self, session: str) -> bool:
        return session in self._watchers


def links(msg: Any) -> tuple[int | None, str | None, int | None]:
    """(turn, utterance id, recording) of a message, each None where it names none."""
    turn = getattr(msg, "turn", None)
    if turn is None:
        turn = getattr(msg, "through_turn", None)
    utterance = getattr(msg, "utterance_id", None)
    if utterance is None and type(msg).__name__ == "Utterance":
        utterance = msg.id
    recording = getattr(msg, "recording", None)
    return (turn if isinstance(turn, int) else None, utterance if isinstance(utterance, str) else None,
            recording if isinstance(recording, int) else None)


_FIELDS: dict[type, tuple[str, ...]] = {}
_STREAM: dict[type, str | None] = {}
"""Per message type: the name of its binary field if it is audio of a recording (see `TapPoint`)."""


def _stream_bytes(msg: Any) -> int | None:
    """The size of an audio message's bytes, or None for any other message."""
    kind = type(msg)
    try:
        name = _STREAM[kind]
    except KeyError:
        name = _STREAM[kind] = _stream_field(msg)
    return None if name is None else len(getattr(msg, name))


def _stream_field(msg: Any) -> str | None:
    if not dataclasses.is_dataclass(msg) or isinstance(msg, type):
        return None
    names = [f.name for f in dataclasses.fields(msg)]
    if "recording" not in names or "id" in names or "turn" in names or "utterance_id" in names:
        return None  # an utterance (one per turn) is not a stream
    return next((n for n in names if isinstance(getattr(msg, n), bytes | bytearray | memoryview)), None)


def summarize(msg: Any) -> str:
    """`text='hello' audio=<1,280 B>`: the message's fields, binary ones by size, cut short."""
    if not dataclasses.is_dataclass(msg) or isinstance(msg, type):
        return _cut(_value(msg))
    names = _FIELDS.get(type(msg))
    if names is None:
        names = _FIELDS[type(msg)] = tuple(f.name for f in dataclasses.fields(msg) if f.name not in SKIPPED_FIELDS)
    return _cut(" ".join(f"{name}={_value(getattr(msg, name))}" for name in names))


def _value(value: Any, nested: bool = False) -> str:
    """One field, shallow: containers inside containers show as `{…}` (a summary is a glance)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value):,} B>"
    if isinstance(value, str):
        return repr(value) if len(value) <= TEXT_CHARS else repr(value[:TEXT_CHARS]) + f"…({len(value):,} chars)"
    if isinstance(value, float):
        return f"{value:.1f}"
    if value is None or isinstance(value, bool | int):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return "{" + " ".join(f"{f.name}={_value(getattr(value, f.name), nested=True)}"
                              for f in dataclasses.fields(value)) + "}" if not nested else "{…}"
    if isinstance(value, dict):
        if nested:
            return "{…}"
        return "{" + ", ".join(f"{k}: {_value(v, nested=True)}" for k, v in list(value.items())[:6]) + \
            (", …}" if len(value) > 6 else "}")
    if isinstance(value, list | tuple):
        return f"[{len(value)} items]"
    return type(value).__name__


def _cut(text: str) -> str:
    return text if len(text) <= SUMMARY_CHARS else text[:SUMMARY_CHARS] + "…"
