"""Reading a session recording (`flow.transport.session_log` writes them): header, events, turns.

A file still being written (no `end` record) or cut short reads as far as it is whole; a line
that is not JSON ends the reading there, like the end of a stream.
"""

from __future__ import annotations

import base64
import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flow.transport.session_log import FORMAT, SUFFIX


class NotARecording(ValueError):
    """The file is not a voicegraph session recording (or of a newer version)."""


@dataclass(frozen=True, slots=True)
class Event:
    """One event of a run: `t` ms after the session opened, its name and payload."""

    t: float
    event: str
    data: Any


@dataclass
class Recording:
    path: Path
    header: dict[str, Any]
    inbound: list[Event] = field(default_factory=list)
    outbound: list[Event] = field(default_factory=list)
    turns: list[Event] = field(default_factory=list)
    """`Event(t, outcome, turn-metrics payload)` for every turn that ended."""
    end: dict[str, Any] | None = None
    truncated: bool = False

    @property
    def graph(self) -> dict[str, str]:
        return self.header.get("graph") or {}

    @property
    def duration_ms(self) -> float:
        times = [e.t for e in (*self.inbound, *self.outbound, *self.turns)]
        return max(times, default=0.0)


def _open(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.name.endswith(".gz") else path.open(encoding="utf-8")


def restore(value: Any) -> Any:
    """`{"$bytes": base64}` back into bytes, anywhere in a payload."""
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get("$bytes"), str):
            return base64.b64decode(value["$bytes"])
        return {k: restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [restore(v) for v in value]
    return value


def read_header(path: str | Path) -> dict[str, Any]:
    """Only the first line: enough to list recordings without reading their audio."""
    path = Path(path)
    with _open(path) as fh:
        try:
            header = json.loads(fh.readline() or "null")
        except ValueError as err:
            raise NotARecording(f"{path.name}: not a voicegraph recording") from err
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise NotARecording(f"{path.name}: not a voicegraph recording")
    if header.get("version", 0) > 1:
        raise NotARecording(f"{path.name}: format version {header.get('version')} is newer than this voicegraph")
    return header


def read_recording(path: str | Path) -> Recording:
    path = Path(path)
    rec = Recording(path, read_header(path))
    with _open(path) as fh:
        fh.readline()
        for line in fh:
            try:
                r = json.loads(line)
            except ValueError:
                break
            kind, t = r.get("dir"), float(r.get("t") or 0.0)
            if kind == "in":
                rec.inbound.append(Event(t, r["event"], restore(r.get("data"))))
            elif kind == "out":
                rec.outbound.append(Event(t, r["event"], r.get("data")))
            elif kind == "turn":
                rec.turns.append(Event(t, r.get("outcome", ""), r.get("data") or {}))
            elif kind == "truncated":
                rec.truncated = True
            elif kind == "end":
                rec.end = r
    return rec


def list_recordings(directory: str | Path) -> list[dict[str, Any]]:
    """Recordings in `directory`, newest first: name, size, session, graph, start."""
    out = []
    for path in Path(directory).glob(f"*{SUFFIX}*"):
        try:
            header = read_header(path)
            size = path.stat().st_size
        except (OSError, NotARecording):
            continue
        out.append({"name": path.name, "path": str(path), "bytes": size, "session": header.get("session", ""),
                    "graph": (header.get("graph") or {}).get("name", ""), "started_at": header.get("started_at", ""),
                    "label": (header.get("peer") or {}).get("label", "")})
    out.sort(key=lambda r: r["name"], reverse=True)
    return out
