"""What the message tap shows, folded from the monitor's `tap` events (see `flow.tap`).

One `TapLog` per tapped session keeps its last `KEEP_RECORDS` records (and at most `KEEP_BYTES`
of them, estimated), and stays after the session closes: `TapStore` keeps the logs of the last
`KEEP_CLOSED` closed sessions, so what flowed can be read after the fact. Nothing here reaches a
session: it is rebuilt from events alone, like the rest of the dashboard's model.

Following a turn: the records of turn N, the records that caused them (the transcript that a turn
taker turned into turn N), the records of those utterances, and of the recordings those utterances
came from (the audio). Their edges are the path turn N took through the graph.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from flow.monitor import MonitorEvent

KEEP_RECORDS = 2_000
"""Records kept per tapped session (the newest)."""
KEEP_BYTES = 1024 * 1024
"""…and at most about this many bytes of them."""
RECORD_OVERHEAD_BYTES = 300
"""What one record costs beyond its summary (the dict, its keys, the label)."""
KEEP_CLOSED = 10
"""Logs kept of sessions that closed (the most recently closed)."""


@dataclass(frozen=True, slots=True)
class TapRecord:
    seq: int
    at_ms: float
    edge: int
    label: str
    type: str
    turn: int | None
    utterance: str | None
    recording: int | None
    cause: int | None
    summary: str

    @property
    def src(self) -> str:
        return self.label.split(" -> ")[0]

    @property
    def dst(self) -> str:
        return self.label.split(" -> ")[-1]

    def matches(self, node: str = "", port: str = "", turn: int | None = None) -> bool:
        """Whether this record passes the filter (empty/None: any). A node or port matches either end."""
        ends = (self.src, self.dst)
        if node and not any(end.split(".")[0] == node for end in ends):
            return False
        if port and not any(end.split(".", 1)[-1] == port for end in ends):
            return False
        return turn is None or self.turn == turn


@dataclass
class TapLog:
    """The tapped records of one session, oldest first, bounded by count and bytes."""

    sid: str
    records: deque[TapRecord] = field(default_factory=deque)
    bytes: int = 0
    dropped: int = 0
    closed: bool = False
    version: int = 0

    def add(self, record: TapRecord) -> None:
        self.records.append(record)
        self.bytes += _cost(record)
        while self.records and (len(self.records) > KEEP_RECORDS or self.bytes > KEEP_BYTES):
            self.bytes -= _cost(self.records.popleft())
            self.dropped += 1
        self.version += 1

    def turns(self) -> list[int]:
        return sorted({r.turn for r in self.records if r.turn is not None})

    def follow(self, turn: int) -> list[TapRecord]:
        """The records of `turn` and of what it came from (see the module's docstring), in order."""
        by_seq = {r.seq: r for r in self.records}
        chosen = {r.seq for r in self.records if r.turn == turn}
        todo = list(chosen)
        while todo:  # what caused them, transitively
            cause = by_seq[todo.pop()].cause
            if cause is not None and cause in by_seq and cause not in chosen:
                chosen.add(cause)
                todo.append(cause)
        utterances = {by_seq[s].utterance for s in chosen} - {None}
        chosen |= {r.seq for r in self.records if r.utterance in utterances}
        recordings = {r.recording for r in self.records if r.utterance in utterances} - {None}
        chosen |= {r.seq for r in self.records if r.recording in recordings and r.utterance is None}
        return sorted((r for r in self.records if r.seq in chosen), key=_seq)

    def ordered(self) -> list[TapRecord]:
        """Every record by seq: the order things happened (a run of audio arrives when it ends,
        under the seq of its first chunk; see `flow.tap.TapPoint`)."""
        return sorted(self.records, key=_seq)


def path(records: list[TapRecord]) -> list[tuple[int, str]]:
    """The distinct edges of `records` as (edge index, label), in the order first used."""
    seen: dict[int, str] = {}
    for r in records:
        seen.setdefault(r.edge, r.label)
    return list(seen.items())


class TapStore:
    """Every tap log this dashboard has: of live tapped sessions, and of the last closed ones."""

    def __init__(self) -> None:
        self.logs: dict[str, TapLog] = {}

    def apply(self, ev: MonitorEvent) -> None:
        if ev.kind == "tap":
            log = self.logs.get(ev.session)
            if log is None:
                log = self.logs[ev.session] = TapLog(ev.session)
            log.add(_record(ev.data, ev.at_ms))
        elif ev.kind == "close" and ev.session in self.logs:
            log = self.logs.pop(ev.session)
            log.closed = True
            log.version += 1
            self.logs[ev.session] = log  # the most recently closed last
            closed = [sid for sid, lg in self.logs.items() if lg.closed]
            for sid in closed[:-KEEP_CLOSED]:
                del self.logs[sid]

    def get(self, sid: str) -> TapLog | None:
        return self.logs.get(sid)


def _record(d: dict[str, Any], at_ms: float) -> TapRecord:
    return TapRecord(d["seq"], d.get("at_ms") or at_ms, d["edge"], d["label"], d["type"], d.get("turn"),
                     d.get("utterance"), d.get("recording"), d.get("cause"), d.get("summary", ""))


def _seq(record: TapRecord) -> int:
    return record.seq


def _cost(record: TapRecord) -> int:
    return RECORD_OVERHEAD_BYTES + len(record.summary) + len(record.label)
