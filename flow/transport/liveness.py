"""A dead client's session is freed within seconds: engine.io's websocket driver, made prompt.

python-engineio (4.x, aiohttp mode) calls our `disconnect` handler only once its websocket handler
has finished, and three of its paths are slow or never finish for a client that vanished:

- **An invalid packet** (a text frame that is not an Engine.IO packet, e.g. `x` or an empty
  frame) raises inside its receive loop, outside any `try`: the handler dies, aiohttp drops the
  connection, and the engine.io socket is never closed. The session and its ffmpeg decoder live
  on until the ping timeout (25 + 20 s with engine.io's defaults).
- **A cut network** (no FIN, no RST: the peer is just gone) is noticed only by the ping timeout.
- **Closing** waits for its writer task, which may sit in `send()` behind a full TCP window (a peer
  that is gone never acknowledges), and then for the peer's close frame (aiohttp waits 10 s).

`LiveWebSocket` replaces engine.io's aiohttp websocket driver (`install(sio)`), and runs the
socket with our loop (`flow.transport.frames`: engine.io's, without a task per frame). Whenever the
connection is over for any reason — the peer closed or reset it, it sent an invalid packet, or it
sent nothing for `ping_interval + ping_timeout` (a live client answers every ping) — it closes the
engine.io socket *first*, which runs our `disconnect` handler (the session closes, its decoder is
killed), and only then lets engine.io wind down its transport. A silent peer's TCP connection is
aborted, not closed politely. Engine.io's own ping-timeout check (its service task) still runs
beside this, as a second line; the server aborts the TCP connection of a client it dropped that way.

**Busy is not silent.** A client's pong travels behind everything it sent before: one that floods
(1 MB chunks as fast as its socket takes them; the JS client buffers without bound) delays its pong
past the ping timeout, and engine.io closed it as gone after ~8 s although frames kept arriving
every millisecond, so the client saw a bare `transport close` where its `rate_limited` errors
should have told it to slow down. So every frame that arrives answers a ping still waiting, as its
pong would (`alive`): the server keeps pinging a busy client (else the client, pinged no more,
gives up on the server after interval + timeout), and a connection is judged silent only when
nothing at all arrives.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import WSMsgType, web
from engineio import packet
from engineio.async_drivers import aiohttp as eio_aiohttp

from flow.transport import frames

log = logging.getLogger("voicegraph.liveness")

CLOSE_TIMEOUT_S = 1.0
"""How long a closing websocket waits for the peer's close frame (aiohttp's default: 10 s)."""
EARLY_S = 0.25
"""The silence watchdog fires this much before engine.io's own receive timeout (equal to
interval + timeout), so that it is ours that closes the socket, session first."""
_PACKET_TYPES = frozenset("0123456")


def install(sio: Any) -> None:
    """Make `sio` (a python-socketio `AsyncServer` in aiohttp mode) use `LiveWebSocket`.

    Engine.io's driver table is its module's own dict, shared by every server in the process:
    this server gets a copy, so other engine.io servers (a test's bare one) keep theirs."""
    sio.eio._async = {**sio.eio._async, "websocket": LiveWebSocket}


def invalid_packet(data: str | bytes) -> str | None:
    """Why a websocket frame is no Engine.IO packet (None if it is one). Binary frames are
    always messages; a text frame starts with a packet type, or `b` and base64."""
    if isinstance(data, bytes | bytearray):
        return None
    if not data:
        return "an empty frame"
    if data[0] in _PACKET_TYPES and (len(data) < 2 or data[1].isnumeric()):
        return None  # no JSON payload to decode (`42[...]`, `3`, `2`): the common case
    try:
        packet.Packet(encoded_packet=data)
    except Exception as err:  # what engine.io's own loop would die of
        return f"a frame starting {data[:20]!r} ({type(err).__name__})"
    return None


def alive(sock: Any) -> None:
    """A frame arrived on `sock` (an engine.io `AsyncSocket`): if a ping waits for its pong
    (`last_ping`, when it was sent), take the frame as the pong — engine.io's `schedule_ping` ends
    the wait and sends the next ping an interval later. A late real pong ends the next wait early:
    harmless, the client is alive."""
    if sock is not None and getattr(sock, "last_ping", None) and not sock.closing:
        sock.schedule_ping()


def _retrieved(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("closing a silent connection failed: %r", task.exception())


class LiveWebSocket(eio_aiohttp.WebSocket):
    """engine.io's aiohttp websocket wrapper, closing the engine.io socket as soon as the
    connection is over (see the module's docstring)."""

    def __init__(self, handler: Any, server: Any) -> None:
        super().__init__(handler, server)
        self.engine_socket = getattr(handler, "__self__", None)
        """The `AsyncSocket` whose `_websocket_handler` is `handler`."""
        self._request: web.Request | None = None
        self._closing: asyncio.Task | None = None
        self._last_frame = 0.0
        """Loop time of the last frame that arrived (the silence watchdog reads it)."""
        self._watchdog: asyncio.TimerHandle | None = None
        self._silenced: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        request = self._request = environ["aiohttp.request"]
        self._sock = web.WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, timeout=CLOSE_TIMEOUT_S)
        await self._sock.prepare(request)
        self.environ = environ
        loop = self._loop = asyncio.get_running_loop()
        self._last_frame = loop.time()
        self._watchdog = loop.call_later(self._silent_s(), self._check_silence)
        try:
            if self.engine_socket is not None:
                await frames.serve(self.engine_socket, self)  # engine.io's loop, minus a task per frame
            else:
                await self.handler(self)
        finally:
            self._watchdog.cancel()
        return self._sock

    def _silent_s(self) -> float:
        server = self.server
        return max(0.5, server.ping_interval + server.ping_timeout - EARLY_S)

    def _check_silence(self) -> None:
        """The watchdog: one timer per connection, re-armed for when the connection would have been
        silent too long counting from its last frame (a timeout on every `receive` cost a timer
        armed and cancelled per frame: ~12 µs of the ~80 µs an audio chunk costs, measured)."""
        loop = self._loop
        assert loop is not None
        silent = self._silent_s()
        quiet = loop.time() - self._last_frame
        if quiet < silent:
            self._watchdog = loop.call_later(silent - quiet, self._check_silence)
            return
        self._silenced = asyncio.ensure_future(
            self._gone(self.server.reason.PING_TIMEOUT, f"silent for {silent:g} s", abort=True))
        self._silenced.add_done_callback(_retrieved)

    async def wait(self) -> str | bytes:
        """The next frame's data; OSError once the connection is over (engine.io then ends its loop)."""
        server = self.server
        try:
            msg = await self._sock.receive()
        except Exception as err:  # e.g. aiohttp's "WebSocket connection is closed"
            await self._gone(server.reason.TRANSPORT_ERROR, type(err).__name__)
            raise OSError("the connection is over") from err
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            await self._gone(server.reason.TRANSPORT_CLOSE, None)
            raise OSError("the connection is over")
        self._last_frame = self._loop.time()  # type: ignore[union-attr]
        why = invalid_packet(msg.data)
        if why is not None:
            await self._gone(server.reason.TRANSPORT_ERROR, f"invalid Engine.IO packet: {why}")
            raise OSError("invalid packet")
        alive(self.engine_socket)
        return msg.data

    async def _gone(self, reason: str, why: str | None, abort: bool = False) -> None:
        """Close the engine.io socket now (our `disconnect` handler runs: the session closes);
        with `abort`, drop the TCP connection without a handshake the peer cannot answer."""
        sock = self.engine_socket
        if why is not None:
            log.info("engine.io %s: closing, %s", getattr(sock, "sid", "?"), why)
        if abort and self._request is not None and self._request.transport is not None:
            self._request.transport.abort()  # a writer blocked on the dead peer's window fails now
        if sock is None or not sock.upgraded or sock.closing or sock.closed:
            return  # (a websocket probe that failed leaves a long-polling client its session)
        if self._closing is None:
            # its own task: engine.io's receive timeout may cancel this one while the session closes
            self._closing = asyncio.ensure_future(sock.close(wait=False, abort=True, reason=reason))
        await asyncio.shield(self._closing)
