"""The door: every packet a client sends is checked here before python-socketio acts on it.

python-socketio (5.x) dispatches a client event by its name alone, so the names it keeps for
itself reach the application from any client: `42["connect",{}]` ran our connect handler again
(a second session built over the live one, the old one leaked with its ffmpeg, the rate limits
reset), `42["disconnect"]` closed the session and left the socket open, `42["*"]` reached the
catch-all handler with the wrong arguments. It buffers as many binary attachments as a packet
declares (up to ten digits), and a packet it cannot parse became a traceback in engine.io's log
(printed twice: engine.io's own handler and the root logger's). So:

- `DoorPacket.decode` reads a packet strictly: JSON as orjson reads it (no NaN, Infinity, 1e400,
  lone surrogates), at most `MAX_ATTACHMENTS` binary attachments with placeholders that match
  them, and an event is a list whose first item is one of the protocol's names
  (`wire.CLIENT_EVENTS`). Anything else raises `Refused` before anything is buffered or dispatched.
- `DoorServer` catches `Refused`. A well-formed event the protocol does not have (unknown, or a
  reserved name) is answered `bad_request` by the client's session, which counts it against its
  control-event rate limit; its attachments are dropped as they come. A malformed packet is
  answered `bad_request` where there is a session, is logged once per connection (the rest are
  counted, and the count logged when the connection ends), and a connection that keeps sending
  them (more than `MALFORMED_BURST`, refilled at `MALFORMED_PER_SECOND`) is disconnected, its TCP
  connection aborted `GRACE_S` later if still open. Connect attempts are limited the same way, so
  a wrong token cannot be retried (or logged) without end on one connection.
- `cut(sid, code, message)` disconnects a client the same way for its session (one that stayed
  over its rate limits, `flow.transport.ratelimit.FloodWatch`): a last `error`, then whatever it
  still sends is dropped unread.
- Engine.IO connections are capped and must join: one that never connects to the namespace held
  a socket, a ping task and its buffers without counting against `VOICEGRAPH_MAX_SESSIONS`
  (thousands could be opened). A new connection beyond `max_connections` (the server passes
  `max_sessions + WAITING_CONNECTIONS`) is refused at the Engine.IO handshake with a `server_full`
  answer (HTTP 401, engine.io's way to refuse), and one without a session `JOIN_TIMEOUT_S` after
  it opened (it never connected, or its connect was refused) is closed, its TCP connection
  aborted `GRACE_S` later if still open.
- The hot path: an audio chunk in the exact packet the official clients send (`AUDIO_PLACEHOLDER`,
  then its one binary frame) is handed to its session by the door, without python-socketio's
  generic dispatch; any other shape, or a connection without a session, takes the checked path
  above. The session's own checks (size, rate, bytes per second) apply either way.
- What engine.io itself logs with a traceback (an Engine.IO packet of unknown type `7` is an
  `IndexError` in its receive loop, logged per packet) passes `QuietRepeats`: one per place per
  minute, the rest counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import socketio
from socketio import packet

from flow.sizing import quote
from flow.transport import fastjson
from flow.transport.outbox import GRACE_S
from flow.transport.ratelimit import TokenBucket
from flow.transport.wire import CLIENT_EVENTS

log = logging.getLogger("voicegraph.door")

MAX_ATTACHMENTS = 1
"""Binary attachments a packet may declare: an audio chunk has one, no event has more."""
AUDIO_PLACEHOLDER = '51-["audio-stream",{"_placeholder":true,"num":0}]'
"""An `audio-stream` event carrying one binary chunk, as the official clients (JS and Python) encode
it: the door hands its attachment to the session itself (`DoorServer._handle_eio_message`)."""
MAX_PLACEHOLDER_DEPTH = 8
"""How deep a binary event's data may nest (an audio event is two levels deep)."""
MALFORMED_BURST = 10.0
"""Malformed packets a connection may send before it is disconnected…"""
MALFORMED_PER_SECOND = 0.5
"""…refilled at this rate: a client with an occasional bad packet stays connected."""
CONNECT_BURST = 5.0
"""Connect attempts (`40…`) per connection, refilled at `CONNECTS_PER_SECOND`; more are malformed."""
CONNECTS_PER_SECOND = 0.1


WAITING_CONNECTIONS = 32
"""Engine.IO connections allowed beyond the session cap: room for clients between their Engine.IO
handshake and their namespace connect, and for ones refused `server_full` before they go."""
JOIN_TIMEOUT_S = 10.0
"""How long an Engine.IO connection may stay without a session (the official clients connect to
the namespace within milliseconds of the handshake)."""

REPEAT_WINDOW_S = 60.0
"""`QuietRepeats` lets one traceback per place through in this window."""


class QuietRepeats(logging.Filter):
    """On a library's logger: a record with a traceback passes once per `window_s` for each
    (message, exception type, raising line); the rest are counted, and the next one that passes
    says how many were not logged. Records without a traceback pass untouched."""

    MAX_PLACES = 256

    def __init__(self, window_s: float = REPEAT_WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window_s = window_s
        self._clock = clock
        self._places: dict[tuple, list] = {}
        """place → [when it last passed, records not logged since]"""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or record.exc_info[1] is None:
            return True
        _, exc, tb = record.exc_info
        frames = traceback.extract_tb(tb) if tb is not None else []
        where = (frames[-1].filename, frames[-1].lineno) if frames else None
        key = (record.msg, type(exc), where)
        now = self._clock()
        seen = self._places.get(key)
        if seen is not None and now - seen[0] < self.window_s:
            seen[1] += 1
            return False
        if seen is not None and seen[1]:
            record.msg = f"{record.msg} ({seen[1]} alike in the last {now - seen[0]:.0f} s not logged)"
        if len(self._places) >= self.MAX_PLACES:
            self._places.clear()
        self._places[key] = [now, 0]
        return True


class Refused(Exception):
    """A packet turned away at the door. With `event`, a well-formed event the protocol does not
    have (its `attachments` binary frames follow it and are dropped); without, a malformed packet."""

    def __init__(self, reason: str, *, event: str | None = None, attachments: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.event = event
        self.attachments = attachments


class DoorPacket(packet.Packet):
    """python-socketio's packet, decoded strictly (see the module doc); encoding is unchanged."""

    json = fastjson
    """Its own attribute: NiceGUI's process-wide json module (set on the base class) never reaches it."""
    events = frozenset(CLIENT_EVENTS)

    def decode(self, encoded_packet: Any) -> int:
        if not isinstance(encoded_packet, str):
            raise Refused("a binary frame that no packet announced")
        try:
            attachments = super().decode(encoded_packet) or 0
        except Exception as err:  # bad JSON (strict), a bad header: python-socketio's own messages
            raise Refused(f"{type(err).__name__}: {quote(str(err))}") from None
        kind = self.packet_type
        if kind not in (packet.CONNECT, packet.DISCONNECT, packet.EVENT, packet.ACK, packet.BINARY_EVENT,
                        packet.BINARY_ACK):
            raise Refused(f"packet type {quote(kind)} is not one a client sends")
        binary = kind in (packet.BINARY_EVENT, packet.BINARY_ACK)
        if binary:
            if attachments < 1:
                raise Refused("a binary packet that declares no attachment")
            if attachments > MAX_ATTACHMENTS:
                raise Refused(f"a packet declares {attachments} binary attachments; at most {MAX_ATTACHMENTS} "
                              "are accepted")
            _check_placeholders(self.data, attachments)
        if kind in (packet.EVENT, packet.BINARY_EVENT):
            data = self.data
            if not isinstance(data, list) or not data or not isinstance(data[0], str):
                raise Refused("an event is a list that starts with its name")
            if data[0] not in self.events:
                raise Refused("not an event of this protocol", event=data[0], attachments=attachments)
        return attachments


def _check_placeholders(data: Any, attachments: int) -> None:
    """Every `{_placeholder, num}` names an attachment the packet declared (python-socketio indexes
    its list with `num` unchecked), and the data nests no deeper than `MAX_PLACEHOLDER_DEPTH`."""
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_PLACEHOLDER_DEPTH:
            raise Refused("a binary packet's data nests too deeply")
        if isinstance(value, dict):
            if value.get("_placeholder") and "num" in value:
                num = value["num"]
                if type(num) is not int or not 0 <= num < attachments:
                    raise Refused(f"a placeholder names attachment {quote(num)} of {attachments}")
                continue
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


class _Session(Protocol):
    def handle(self, event: str, payload: Any) -> None: ...
    def reject(self, code: str, message: str) -> None: ...


@dataclass(slots=True)
class _Visitor:
    """What the door remembers about one Engine.IO connection while it lasts."""

    malformed: int = 0
    skip: int = 0
    """Binary frames still to drop (the attachments of a refused event)."""
    audio: _Session | None = None
    """The session the next frame (an audio chunk's attachment) goes to (see `AUDIO_PLACEHOLDER`)."""
    cut: bool = False
    """Being disconnected: whatever else it sends is dropped unread."""
    allowance: TokenBucket = field(default_factory=lambda: TokenBucket(MALFORMED_PER_SECOND, MALFORMED_BURST))
    connects: TokenBucket = field(default_factory=lambda: TokenBucket(CONNECTS_PER_SECOND, CONNECT_BURST))


class DoorServer(socketio.AsyncServer):
    """python-socketio's server with the door in front of its dispatcher.

    `session_of(sid)` finds the session of a Socket.IO sid (None before connect or after a
    refused one); `transport_of(eio_sid)` the TCP transport carrying an Engine.IO connection.
    Hooks python-socketio's `_handle_eio_message`/`_handle_eio_disconnect` (5.x; a test checks
    they still exist) and its `serializer=` packet class.
    """

    def __init__(self, *, session_of: Callable[[str], _Session | None],
                 transport_of: Callable[[str], asyncio.BaseTransport | None],
                 max_connections: int = 1_000_000, join_timeout_s: float = JOIN_TIMEOUT_S, **kwargs: Any) -> None:
        super().__init__(serializer=DoorPacket, **kwargs)
        self._session_of = session_of
        self._transport_of = transport_of
        self.max_connections = max_connections
        """Engine.IO connections at once, with or without a session (see the module doc)."""
        self.join_timeout_s = join_timeout_s
        self.refused_connections = 0
        """Engine.IO handshakes refused over `max_connections` (the first of a burst is logged)."""
        self._visitors: dict[str, _Visitor] = {}
        self._cutting: set[asyncio.Task] = set()
        self._join_deadlines: dict[str, asyncio.TimerHandle] = {}

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        # engine.io has counted the new socket already
        if len(self.eio.sockets) > self.max_connections:
            self.refused_connections += 1
            if self.refused_connections % 100 == 1:
                log.warning("refused an Engine.IO connection: %d open, the limit (%d refused so far)",
                            len(self.eio.sockets) - 1, self.refused_connections)
            return {"code": "server_full",
                    "message": f"the server is at its limit of {self.max_connections} connections; try later"}
        self._join_deadlines[eio_sid] = asyncio.get_running_loop().call_later(
            self.join_timeout_s, self._join_deadline, eio_sid)
        return await super()._handle_eio_connect(eio_sid, environ)

    def _join_deadline(self, eio_sid: str) -> None:
        self._join_deadlines.pop(eio_sid, None)
        sock = self.eio.sockets.get(eio_sid)
        if sock is None or sock.closing or sock.closed or self._session(eio_sid) is not None:
            return
        log.info("connection %s: no session %g s after it opened: closing", eio_sid, self.join_timeout_s)
        task = asyncio.get_running_loop().create_task(self._close_engine(eio_sid), name=f"door-join-{eio_sid}")
        self._cutting.add(task)
        task.add_done_callback(self._cutting.discard)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        visitor = self._visitors.get(eio_sid)
        if visitor is None:
            sock = self.eio.sockets.get(eio_sid)
            if sock is None or sock.closed:
                return  # what a closed connection still sends is dropped unread
            visitor = self._visitors[eio_sid] = _Visitor()
        if visitor.cut:
            return
        if visitor.audio is not None:  # the attachment of an audio chunk: the hot path
            session, visitor.audio = visitor.audio, None
            session.handle("audio-stream", data)
            return
        if visitor.skip:
            visitor.skip -= 1
            if not isinstance(data, str):
                return  # an attachment of a refused event
            visitor.skip = 0
        if data == AUDIO_PLACEHOLDER and eio_sid not in self._binary_packet:
            # what python-socketio would do for it, minus its generic dispatch (a packet object,
            # the attachment reassembled, the handler looked up and awaited): 67 -> 53 µs of CPU per
            # chunk, measured. Without a session it takes the generic path (and is refused there).
            visitor.audio = self._session(eio_sid)
            if visitor.audio is not None:
                return
        try:
            if not data and eio_sid not in self._binary_packet:  # python-socketio would not decode it
                raise Refused("an empty packet")
            if isinstance(data, str) and data[:1] == "0" and not visitor.connects.take():
                raise Refused("too many connect attempts on one connection")
            await super()._handle_eio_message(eio_sid, data)
        except Refused as err:
            if err.event is not None and (session := self._session(eio_sid)) is not None:
                visitor.skip = err.attachments
                session.handle(err.event, None)  # bad_request, rate-limited like any control event
            elif err.event is not None:
                visitor.skip = err.attachments
                await self._malformed(eio_sid, visitor, "an event before a connect", data)
            else:
                await self._malformed(eio_sid, visitor, err.reason, data)
        except Exception as err:  # python-socketio's own checks (an unexpected attachment, …)
            await self._malformed(eio_sid, visitor, f"{type(err).__name__}: {quote(str(err))}", data, err)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        deadline = self._join_deadlines.pop(eio_sid, None)
        if deadline is not None:
            deadline.cancel()
        try:
            await super()._handle_eio_disconnect(eio_sid, reason)
        finally:
            visitor = self._visitors.pop(eio_sid, None)
            if visitor is not None and visitor.malformed > 1:
                log.warning("connection %s closed after %d malformed packets", eio_sid, visitor.malformed)

    def _session(self, eio_sid: str) -> _Session | None:
        sid = self.manager.sid_from_eio_sid(eio_sid, "/")
        return self._session_of(sid) if sid is not None else None

    async def _malformed(self, eio_sid: str, visitor: _Visitor, reason: str, data: Any,
                         err: Exception | None = None) -> None:
        visitor.malformed += 1
        if visitor.malformed == 1:  # a traceback only for what the door did not foresee, and once
            log.warning("connection %s: %s in %s (more from it are counted, not logged)",
                        eio_sid, reason, quote(data), exc_info=err)
        session = self._session(eio_sid)
        if not visitor.allowance.take():
            self._cut(eio_sid, visitor)
        elif session is not None:
            session.reject("bad_request", f"malformed packet: {reason}")

    def cut(self, sid: str, code: str, message: str) -> None:
        """Disconnect Socket.IO client `sid` with a last `error {code, message}`: what it sends
        from now on is dropped unread (a flooder's packets cost nothing more), its session closes,
        its TCP connection is aborted `GRACE_S` later if still open."""
        eio_sid = self.manager.eio_sid_from_sid(sid, "/")
        visitor = self._visitors.get(eio_sid) if eio_sid is not None else None  # None: gone already
        if visitor is not None and not visitor.cut:
            self._cut(eio_sid, visitor, {"code": code, "message": message})

    def _cut(self, eio_sid: str, visitor: _Visitor, error: dict[str, str] | None = None) -> None:
        visitor.cut = True
        if error is None:
            log.warning("connection %s: %d malformed packets: disconnecting", eio_sid, visitor.malformed)
            error = {"code": "bad_request", "message": "too many malformed packets: disconnecting"}
        task = asyncio.get_running_loop().create_task(self._cut_off(eio_sid, error), name=f"door-cut-{eio_sid}")
        self._cutting.add(task)
        task.add_done_callback(self._cutting.discard)

    async def _cut_off(self, eio_sid: str, error: dict[str, str]) -> None:
        """Say why, close the Engine.IO connection (its session closes now), abort TCP if it lingers."""
        transport = self._transport_of(eio_sid)  # now: the disconnect forgets the connection
        sid = self.manager.sid_from_eio_sid(eio_sid, "/")
        try:
            if sid is not None:
                await self.emit("error", error, to=sid, ignore_queue=True)
        except Exception:
            log.exception("telling connection %s why it is cut off failed", eio_sid)
        await self._close_engine(eio_sid, transport)

    async def _close_engine(self, eio_sid: str, transport: asyncio.BaseTransport | None = None) -> None:
        """Close the Engine.IO connection (its session closes now); abort TCP if it lingers."""
        if transport is None:
            transport = self._transport_of(eio_sid)
        try:
            # the close waits for the writer to take the queue: not forever for a client not reading
            await asyncio.wait_for(self.eio.disconnect(eio_sid), GRACE_S)
        except TimeoutError:
            pass
        except Exception:
            log.exception("disconnecting connection %s failed", eio_sid)
        await asyncio.sleep(GRACE_S)
        if transport is not None and not transport.is_closing():
            transport.abort()
