"""Session recording to disk (`--record DIR`): each session's events, in and out, as it happened.

Not the protocol's recording identity (`flow.transport.recordings` numbers `start-recording`s):
this is the black box a team reads after a user said "it cut me off", and what `voicegraph
replay` feeds back through a graph.

One file per session, `<UTC start>-<session id>.vgrec.jsonl`, JSON lines (README, "Recording
sessions"):

    {"format": "voicegraph-recording", "version": 1, "session", "started_at", "graph", "peer", …}
    {"t": ms, "dir": "in", "event": "audio-stream", "data": {"$bytes": "<base64>"}}   (each client event)
    {"t": ms, "dir": "out", "event": "ai-response", "data": {…, "audio": "<base64 MP3>"}}   (each event sent)
    {"t": ms, "dir": "turn", "outcome": "answered", "data": {turn-metrics payload}}   (any graph)
    {"t": ms, "dir": "truncated"}   (the per-session cap was reached)
    {"t": ms, "dir": "end", "records": n, "dropped": n, "truncated": bool}

`t` is milliseconds since the session opened, taken on the event loop when the event arrived (in)
or was handed to the client's outbox (out). Binary values are `{"$bytes": base64}`.

The session's side (`SessionLog`) only stamps the time and puts a tuple on a bounded queue; one
writer thread per server (`RecordingWriter`) encodes and writes, so the audio path never waits
for the disk. When the queue is full (the disk is slower than the traffic), records are dropped
and counted, never waited for; the end record says how many. A file stops growing at the
per-session cap (a `truncated` record, then only the end); after each file closes, the oldest
closed files go until the directory is within its cap.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import queue
import re
import threading
import time
from pathlib import Path
from typing import IO, Any

import orjson

from flow.sizing import approx_bytes

log = logging.getLogger("voicegraph.recording")

FORMAT = "voicegraph-recording"
VERSION = 1
SUFFIX = ".vgrec.jsonl"
QUEUE_RECORDS = 20_000
"""Records waiting for the writer thread, at most (about 13 minutes of 40 ms audio chunks)."""
QUEUE_BYTES = 32 * 1024 * 1024
"""…and at most this many (estimated) bytes; beyond either, records are dropped and counted."""
BATCH_S = 0.05
"""The writer sleeps this long after emptying the queue, so it wakes for batches, not for each record."""
TRIM_EVERY_BYTES = 16 * 1024 * 1024
"""The directory's cap is also enforced after this many bytes written, not only when a session ends."""
MAX_SESSION_BYTES = 64 * 1024 * 1024
MAX_DIR_BYTES = 1024 * 1024 * 1024
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    raise TypeError(f"{type(value).__name__} is not JSON")


def encode(record: dict[str, Any]) -> bytes:
    """One line of a recording (bytes as `{"$bytes": base64}`)."""
    try:
        return orjson.dumps(record, default=_default) + b"\n"
    except TypeError:  # what orjson refuses (ints beyond 64 bits): whatever json makes of it
        return (json.dumps(record, default=lambda v: _default(v) if isinstance(v, bytes) else repr(v)) + "\n").encode()


class SessionLog:
    """One session's recording, on the event loop: stamp, enqueue, return."""

    __slots__ = ("_put", "_t0", "sid")

    def __init__(self, writer: RecordingWriter, sid: str, header: dict[str, Any]) -> None:
        self._put = writer.put
        self.sid = sid
        self._t0 = time.monotonic()
        writer.put(sid, "open", header, 0)

    def _t(self) -> float:
        return round((time.monotonic() - self._t0) * 1000, 1)

    def inbound(self, event: str, payload: Any) -> None:
        """A client event as it arrived (before any check)."""
        size = len(payload) if isinstance(payload, bytes | bytearray) else approx_bytes(payload)
        self._put(self.sid, "in", (self._t(), event, payload), size)

    def outbound(self, event: str, payload: Any) -> None:
        """An event handed to the client's outbox (its audio included)."""
        self._put(self.sid, "out", (self._t(), event, payload), approx_bytes(payload))

    def turn(self, metrics: dict[str, Any], outcome: str) -> None:
        """A turn ended (the interrupt gate's `turn-metrics`), whatever the graph sends the client."""
        self._put(self.sid, "turn", (self._t(), outcome, metrics), 200)

    def close(self) -> None:
        self._put(self.sid, "close", {"t": self._t()}, 0, force=True)


class _File:
    __slots__ = ("dropped", "fh", "path", "records", "size", "truncated")

    def __init__(self, path: Path, fh: IO[bytes]) -> None:
        self.path, self.fh = path, fh
        self.size = self.records = self.dropped = 0
        self.truncated = False


class RecordingWriter:
    """Every session's recording of one server: a bounded queue and the thread that writes it."""

    def __init__(self, directory: str | Path, *, max_session_bytes: int = MAX_SESSION_BYTES,
                 max_dir_bytes: int = MAX_DIR_BYTES, queue_records: int = QUEUE_RECORDS,
                 queue_bytes: int = QUEUE_BYTES, start: bool = True) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_session_bytes = max_session_bytes
        self.max_dir_bytes = max_dir_bytes
        self.queue_bytes = queue_bytes
        self.queue_records = queue_records
        self._queue: queue.SimpleQueue[tuple[str, str, Any, int] | None] = queue.SimpleQueue()
        self._put_n = self._queued = 0
        """Records and bytes ever put (written by the loop's thread only)."""
        self._taken_n = self._taken = 0
        """Records and bytes ever taken by the writer (written by the writer thread only)."""
        self._dropped: dict[str, int] = {}
        """Records dropped per session (loop's thread only), told in its end record."""
        self.dropped = 0
        self._files: dict[str, _File] = {}
        self._since_trim = 0
        self._thread = threading.Thread(target=self._run, name="voicegraph-recorder", daemon=True)
        self._trim()
        if start:
            self.start()

    def start(self) -> None:
        """Start the writer thread (at construction unless told `start=False`)."""
        self._thread.start()

    def session(self, sid: str, header: dict[str, Any]) -> SessionLog:
        return SessionLog(self, sid, header)

    def put(self, sid: str, kind: str, record: Any, size: int, force: bool = False) -> None:
        """Enqueue without waiting; a record that does not fit (`queue_records`, `queue_bytes`) is
        dropped and counted. `force` (a session's end) is always queued, so its file is closed."""
        if kind == "close":
            record["dropped"] = self._dropped.pop(sid, 0)
        elif not force and (self._queued - self._taken + size > self.queue_bytes
                            or self._put_n - self._taken_n >= self.queue_records):
            self.dropped += 1
            self._dropped[sid] = self._dropped.get(sid, 0) + 1
            return
        self._queue.put((sid, kind, record, size))  # SimpleQueue: a C call, never blocks
        self._put_n += 1
        self._queued += size

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, close every file (blocking: call it off the loop)."""
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the writer has written everything queued so far (tests, the dashboard)."""
        deadline = time.monotonic() + timeout
        while self._taken_n < self._put_n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self._taken_n >= self._put_n

    # ------------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                for sid in list(self._files):
                    self._close(sid, {"t": None, "dropped": 0})
                return
            sid, kind, record, size = item
            try:
                self._write(sid, kind, record)
            except OSError as err:
                log.error("recording %s: %s", sid, err)
            self._taken += size
            self._taken_n += 1
            if self._queue.empty():
                for f in self._files.values():
                    f.fh.flush()
                # let records gather: woken per record, this thread took the GIL from the loop
                # once per audio chunk (ingest at 0.77x of not recording; batched, see BENCHMARKS.md)
                time.sleep(BATCH_S)

    def _write(self, sid: str, kind: str, record: dict[str, Any]) -> None:
        if kind == "open":
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(record.get("started_unix_ms", 0) / 1000))
            path = self.directory / f"{stamp}-{_SAFE.sub('_', sid)[:64]}{SUFFIX}"
            f = self._files[sid] = _File(path, path.open("ab"))
            self._line(f, record)
            return
        f = self._files.get(sid)
        if f is None:
            return
        if kind == "close":
            self._close(sid, record)
            return
        if f.truncated:
            f.dropped += 1
            return
        t, name, data = record
        if kind == "turn":
            line = encode({"t": t, "dir": "turn", "outcome": name, "data": data})
        else:
            line = encode({"t": t, "dir": kind, "event": name, "data": data})
        if f.size + len(line) > self.max_session_bytes:
            f.truncated = True
            f.dropped += 1
            self._line(f, {"t": t, "dir": "truncated"})
            return
        f.fh.write(line)
        f.size += len(line)
        f.records += 1
        self._since_trim += len(line)
        if self._since_trim > TRIM_EVERY_BYTES:  # long sessions: do not wait for one to end
            self._trim()

    def _line(self, f: _File, record: dict[str, Any]) -> None:
        line = encode(record)
        f.fh.write(line)
        f.size += len(line)

    def _close(self, sid: str, record: dict[str, Any]) -> None:
        f = self._files.pop(sid)
        self._line(f, {"t": record.get("t"), "dir": "end", "records": f.records,
                       "dropped": f.dropped + record.get("dropped", 0), "truncated": f.truncated})
        f.fh.close()
        self._trim()

    def _trim(self) -> None:
        """Remove the oldest closed recordings until the directory is within its cap."""
        self._since_trim = 0
        open_now = {f.path for f in self._files.values()}
        found = []
        for path in self.directory.glob(f"*{SUFFIX}*"):
            with contextlib.suppress(OSError):
                st = path.stat()
                found.append((st.st_mtime, path.name, st.st_size, path))
        total = sum(size for _, _, size, _ in found)
        for _, _, size, path in sorted(found):
            if total <= self.max_dir_bytes:
                break
            if path in open_now:
                continue
            with contextlib.suppress(OSError):
                path.unlink()
                total -= size
                log.info("recording %s removed: the directory is over %d bytes", path.name, self.max_dir_bytes)
