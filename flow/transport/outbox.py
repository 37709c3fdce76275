"""A bounded way out to one client: a reader that falls too far behind is cut off, never buffered.

python-engineio queues each client's outbound packets in an unbounded `asyncio.Queue`
(`sio.eio.sockets[eio_sid].queue`), and its websocket writer takes the whole queue whenever it has
written the previous batch. A client that stops reading (a stalled network, a frozen app, a
hostile peer) therefore makes that queue grow for as long as its session produces replies.
`Outbox` stands between a session and that queue:

    session --send()--> Outbox backlog  --pump-->  engine.io queue  --writer-->  TCP  -->  client
                        <= max_bytes               < ENGINE_PACKETS and ENGINE_BYTES
                        <= max_packets             (+ the batch its writer is writing)

- The pump hands a packet to engine.io only while engine.io's queue is short; past that it waits
  (`queue.join()`) until engine.io's writer has taken the queue. So engine.io holds at most two
  short batches for the client: the one being written and the one queued.
- Everything else waits in the outbox's own backlog, whose size is known (estimated bytes, see
  `flow.sizing`). When more than `max_bytes` or `max_packets` wait while the pump is held up by
  engine.io (its writer has not taken the last batch: the client is not reading), the client is a
  slow consumer: the backlog is dropped, `error {code: "slow_consumer"}` is queued for it (a
  client that catches up reads why), it is disconnected (its session closes at once), and if its
  connection is still open `GRACE_S` later, the TCP connection is aborted: that frees what
  engine.io, aiohttp and the kernel still hold for it.
- A burst the session hands over in one go (a long reply and the events after it) is not a slow
  client: the bound counts only while the pump waits. One event larger than `max_bytes` alone is
  also no reason: the bound is on what waits behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import socketio
from aiohttp import web

from flow.sizing import approx_bytes

log = logging.getLogger("voicegraph.outbox")

MAX_BACKLOG_BYTES = 8 * 1024 * 1024
"""Default `max_bytes` (`VOICEGRAPH_MAX_BACKLOG_BYTES`): about four long spoken replies (a minute
of 64 kbit/s MP3 is ~0.65 MB as base64, twice that with streamed chunks). A client on a slow link
may legitimately be a reply or two behind; one that is eight megabytes behind is not reading."""
MAX_BACKLOG_PACKETS = 2_000
"""Events waiting, whatever their size: small events cost ~0.5 KB each in Python objects."""
PACKET_OVERHEAD_BYTES = 100
"""What one queued event costs beyond its payload (the event name, the tuple, the packet)."""
ENGINE_PACKETS = 64
"""The pump waits for engine.io's writer while its queue holds this many packets…"""
ENGINE_BYTES = 256 * 1024
"""…or this many bytes handed to it since it was last seen empty."""
GRACE_S = 2.0
"""After disconnecting a slow consumer, how long its connection may stay open before it is aborted."""
SLOW_CONSUMER = "slow_consumer"


@dataclass(slots=True)
class _Packet:
    event: str
    data: Any
    size: int
    skip: Callable[[], bool] | None = None
    sent: Callable[[], None] | None = None


class Outbox:
    """The outbound events of one Socket.IO client, bounded; `send` never waits for the client."""

    def __init__(self, sio: socketio.AsyncServer, sid: str, *, max_bytes: int = MAX_BACKLOG_BYTES,
                 max_packets: int = MAX_BACKLOG_PACKETS,
                 transport: Callable[[], asyncio.BaseTransport | None] | None = None,
                 on_evict: Callable[[dict[str, Any]], None] | None = None,
                 on_bytes: Callable[[int], None] | None = None) -> None:
        self.sid = sid
        self.max_bytes = max_bytes
        self.max_packets = max_packets
        self.bytes = 0
        """Estimated bytes of the events waiting in the backlog (not yet handed to engine.io)."""
        self.evicted: dict[str, Any] | None = None
        """The `error` payload the client was cut off with, once it was."""
        self._sio = sio
        self._transport = transport or (lambda: environ_transport(sio, sid))
        self._on_evict = on_evict
        self._on_bytes = on_bytes
        """Told each queued event's size (the `voicegraph_sent_bytes` counter)."""
        self._backlog: deque[_Packet] = deque()
        self._wake = asyncio.Event()
        self._engine_bytes = 0
        self._stalled = False
        """The pump waits for engine.io's writer (the client has not taken the last batch)."""
        self._closed = False
        self._pump = asyncio.get_running_loop().create_task(self._run(), name=f"outbox-{sid}")
        self._cutting: asyncio.Task | None = None

    @property
    def packets(self) -> int:
        """Events waiting in the backlog."""
        return len(self._backlog)

    def engine_backlog(self) -> int:
        """Packets waiting in engine.io's own queue for this client (0 once it is gone)."""
        queue = self._engine_queue()
        return queue.qsize() if queue is not None else 0

    async def send(self, event: str, data: Any) -> None:
        """Queue `event` for the client; returns at once."""
        self.put(event, data)

    def put(self, event: str, data: Any, *, skip: Callable[[], bool] | None = None,
            sent: Callable[[], None] | None = None) -> bool:
        """Queue `event`; False if the client is gone or was just found too slow (and is cut off).

        At the moment of hand-off to engine.io, an event whose `skip()` is true is dropped (a reply
        cancelled while it waited), and `sent()` is called once it was handed on: the closest
        this process comes to "written to the socket", which is what the session reports as
        delivered.
        """
        if self._closed or self.evicted is not None:
            return False
        size = approx_bytes(data) + PACKET_OVERHEAD_BYTES
        self._backlog.append(_Packet(event, data, size, skip, sent))
        self.bytes += size
        if self._on_bytes is not None:
            self._on_bytes(size)
        self._wake.set()
        return not (self._stalled and self._check())

    def _check(self) -> bool:
        """Cut the client off if too much waits for it; whether it was."""
        if len(self._backlog) > 1 and (self.bytes > self.max_bytes or len(self._backlog) > self.max_packets):
            self._evict()
            return True
        return False

    async def aclose(self) -> None:
        """Drop what waits and stop the pump (the client disconnected). Idempotent."""
        self._closed = True
        self._backlog.clear()
        self.bytes = 0
        self._pump.cancel()
        if asyncio.current_task() is not self._pump:  # engine.io may close the client from its emit
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump

    # ------------------------------------------------------------------ the pump

    def _engine_queue(self) -> asyncio.Queue | None:
        eio_sid = self._sio.manager.eio_sid_from_sid(self.sid, "/")
        sock = self._sio.eio.sockets.get(eio_sid) if eio_sid is not None else None
        return getattr(sock, "queue", None)

    async def _run(self) -> None:
        while True:
            while not self._backlog:
                self._wake.clear()
                await self._wake.wait()
            packet = self._backlog[0]  # still counted while it waits for room
            if packet.skip is not None and packet.skip():
                self._backlog.popleft()
                self.bytes -= packet.size
                continue
            if not await self._room():
                return  # found too slow: cut off
            if not self._backlog or self._backlog[0] is not packet:
                continue  # dropped meanwhile (closed)
            self._backlog.popleft()
            self.bytes -= packet.size
            if packet.skip is not None and packet.skip():
                continue  # cancelled while it waited for room
            self._engine_bytes += packet.size
            try:
                # the client is connected here: never through a cluster's message queue (Redis)
                await self._sio.emit(packet.event, packet.data, to=self.sid, ignore_queue=True)
            except Exception:
                log.exception("sending %s to %s failed", packet.event, self.sid)
                continue
            if packet.sent is not None:
                packet.sent()

    async def _room(self) -> bool:
        """Wait until engine.io's queue for the client is short enough to take one more packet;
        False if the client was found too slow meanwhile."""
        queue = self._engine_queue()
        if queue is None or queue.qsize() == 0:
            self._engine_bytes = 0
            return True
        if queue.qsize() < ENGINE_PACKETS and self._engine_bytes < ENGINE_BYTES:
            return True
        self._stalled = True
        try:
            if self._check():
                return False
            await queue.join()  # engine.io's writer took everything queued (it writes it now)
        finally:
            self._stalled = False
        self._engine_bytes = 0
        return True

    # ------------------------------------------------------------------ cutting off

    def _evict(self) -> None:
        waiting, nbytes = len(self._backlog), self.bytes
        self.evicted = {"code": SLOW_CONSUMER, "message": (
            f"the client is not reading fast enough: {waiting} events ({nbytes} bytes) waiting, over the "
            f"limit of {self.max_packets} events or {self.max_bytes} bytes; disconnecting")}
        log.warning("session %s: slow consumer, %d events (%d bytes) waiting: disconnecting",
                    self.sid, waiting, nbytes)
        self._backlog.clear()
        self.bytes = 0
        self._pump.cancel()
        self._cutting = asyncio.get_running_loop().create_task(self._cut_off(), name=f"cut-off-{self.sid}")
        if self._on_evict is not None:
            self._on_evict(self.evicted)

    async def _cut_off(self) -> None:
        transport = self._transport()  # now: the disconnect forgets the client's environ
        try:
            await self._sio.emit("error", self.evicted, to=self.sid, ignore_queue=True)
            await self._sio.disconnect(self.sid)
        except Exception:
            log.exception("disconnecting slow consumer %s failed", self.sid)
        await asyncio.sleep(GRACE_S)
        if transport is not None and not transport.is_closing():
            transport.abort()


def environ_transport(sio: socketio.AsyncServer, sid: str) -> asyncio.BaseTransport | None:
    """The TCP transport of the HTTP request that opened `sid`'s Engine.IO connection (aiohttp)."""
    environ = sio.get_environ(sid) or {}
    return getattr(environ.get("aiohttp.request"), "transport", None)


class Connections:
    """Which TCP connection carries each Socket.IO client, so that a slow consumer is cut off for good.

    A client that opened a websocket directly is found through its environ (that request is the
    websocket). One that started with long-polling and upgraded later is noted by `middleware`
    for as long as its websocket request lives: the upgrade request names its engine sid.
    """

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self._sio = sio
        self._upgraded: dict[str, asyncio.BaseTransport] = {}

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        eio_sid = request.query.get("sid") if request.query.get("transport") == "websocket" else None
        transport = request.transport
        if not eio_sid or transport is None:
            return await handler(request)
        self._upgraded[eio_sid] = transport
        try:
            return await handler(request)  # a websocket's handler returns when it closes
        finally:
            if self._upgraded.get(eio_sid) is transport:
                del self._upgraded[eio_sid]

    def transport(self, sid: str) -> asyncio.BaseTransport | None:
        eio_sid = self._sio.manager.eio_sid_from_sid(sid, "/")
        return self._upgraded.get(eio_sid) or environ_transport(self._sio, sid)

    def engine_transport(self, eio_sid: str) -> asyncio.BaseTransport | None:
        """The same, by Engine.IO sid (a connection that has no Socket.IO session, too)."""
        if eio_sid in self._upgraded:
            return self._upgraded[eio_sid]
        request = (self._sio.environ.get(eio_sid) or {}).get("aiohttp.request")
        return getattr(request, "transport", None)
