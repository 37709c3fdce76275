"""One Socket.IO connection: its graph instance, inbound checks, and an ordered outbound queue.

Inbound handlers push into the graph synchronously, before any `await`, so chunks keep the order
they arrived in even though python-socketio runs each event in its own task. Outbound messages are
turned into wire events as the graph produces them and handed, in that order, to the client's
bounded `Outbox`. The session is the graph's `client` node: a `Cancel` on its `cancel` input
drops replies of that turn still waiting in the outbox, and once a reply (piece) has been handed
on to the socket the session says so on its `delivered` output, the record of what the user heard.
Its rate limits answer `rate_limited`; a client that stays over them without a break for
`VOICEGRAPH_FLOOD_DISCONNECT_S` is cut off at the door (`FloodWatch`, `DoorServer.cut`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from flow.audio.mp3 import mp3_seconds
from flow.contract.messages import (
    AudioData,
    Cancel,
    Delivered,
    NodeFailed,
    RecordingStopped,
    ReplyPiece,
    ReplyText,
)
from flow.contract.node import CANCEL_PORT, SessionContext
from flow.contract.resources import Resources
from flow.conversations.conversation import Conversation
from flow.graph.runtime import GraphInstance
from flow.graph.spec import GraphSpec
from flow.transport.ratelimit import FloodWatch, TokenBucket
from flow.transport.recordings import RecordingIds
from flow.transport.session_log import SessionLog
from flow.transport.wire import (
    WireError,
    audio_bytes,
    not_an_event,
    parse_interrupt,
    parse_start,
    parse_text,
    to_wire,
)

log = logging.getLogger("voicegraph.session")

class Outlet(Protocol):
    """Where a session's wire events go (the server gives it the client's `Outbox`)."""

    def put(self, event: str, data: Any, *, skip: Callable[[], bool] | None = None,
            sent: Callable[[], None] | None = None) -> bool: ...

AUDIO_EVENTS_PER_SECOND = 200.0
"""Sustained `audio-stream` events per second (a 40 ms MediaRecorder slice is 25/s)."""
AUDIO_EVENT_BURST = 2_000.0
"""A client may upload a whole recording at once (faster than real time) up to this many chunks."""
AUDIO_BURST_SECONDS = 16.0
"""…and up to this many seconds of `VOICEGRAPH_AUDIO_BYTES_PER_SECOND` (4 MiB by default), never
less than one chunk of the largest accepted size."""
CONTROL_EVENTS_PER_SECOND = 10.0
"""Sustained other events per second: each text turn or interrupt starts or cancels provider work."""
CONTROL_EVENT_BURST = 30.0
ERROR_REPORTS_PER_SECOND = 2.0
MAX_ERROR_CHARS = 300
"""Longest `error` message sent for a refused client event (what it quotes is capped before that)."""


class Session:
    """A connected client and the graph instance that serves it."""

    def __init__(self, sid: str, spec: GraphSpec, resources: Resources, out: Outlet,
                 peer: dict[str, str] | None = None, log: SessionLog | None = None,
                 conversation: Conversation | None = None,
                 cut_off: Callable[[str, str], None] | None = None) -> None:
        self.sid = sid
        self.spec = spec
        self.conversation = conversation
        self.ctx = SessionContext(sid, resources, asyncio.get_running_loop(), conversation)
        self._outlet = out
        self._seq = 0
        self.log = log
        """The session's recording to disk (`--record`), if the server records."""
        self._recordings = RecordingIds()
        settings = resources.settings
        self._max_bytes = settings.max_message_bytes
        self._audio_events = TokenBucket(AUDIO_EVENTS_PER_SECOND, AUDIO_EVENT_BURST)
        self._audio_bytes = TokenBucket(settings.audio_bytes_per_second, max(
            settings.audio_bytes_per_second * AUDIO_BURST_SECONDS, settings.max_message_bytes))
        self._control_events = TokenBucket(CONTROL_EVENTS_PER_SECOND, CONTROL_EVENT_BURST)
        self._error_reports = TokenBucket(ERROR_REPORTS_PER_SECOND, 5)
        self._flood = FloodWatch(settings.flood_disconnect_s)
        self._cut_off = cut_off
        """Disconnects the client with a last `error` (code, message): the server's door."""
        self.flooded = False
        """Over its rate limits for `flood_disconnect_s` without a break: being disconnected."""
        self._typing = False
        self._bytes_in = resources.metrics.bytes_in
        self._errors = resources.metrics.errors
        self.cancelled_through = 0
        """Replies of turns ≤ this are dropped instead of sent (from the `cancel` input)."""
        resources.monitor.tap.arm(sid, (peer or {}).get("label", ""))  # a page waiting for this client
        self.graph = GraphInstance(spec, self.ctx)
        scheduler = self.ctx.scheduler
        for port, sink in self.graph.sinks.items():
            self.ctx.disposables.add(sink.subscribe(
                on_next=self._on_cancel if port == CANCEL_PORT else self._forward,
                on_error=lambda err, port=port: self._sink_failed(port, err),
                scheduler=scheduler,
            ))
        self._delivered = self.graph.sources["delivered"]
        self.probe = self.ctx.probe
        if log is not None:
            self.ctx.watch_turns(log.turn)
        self.peer = peer or {}
        self.announce()

    @property
    def busy(self) -> bool:
        """A reply is in flight (the client was told `ai-typing: true` and not yet `false`) or
        events still wait for the client: what a graceful stop lets finish."""
        return self._typing or getattr(self._outlet, "packets", 0) > 0

    def announce(self) -> None:
        """Tell observers this session exists (at connect, and to a dashboard that just opened)."""
        self.probe.publish("open", graph=self.spec.name, path=self.spec.path, **self.peer)

    # ------------------------------------------------------------------ client → graph

    def handle(self, event: str, payload: Any) -> None:
        """Route one client event into the graph; contract violations become `error` events."""
        if self.flooded:
            return  # being disconnected: the door drops what else it sends
        if self.log is not None:
            self.log.inbound(event, payload)
        try:
            bucket = self._audio_events if event == "audio-stream" else self._control_events
            if not bucket.take():
                raise self._over_limit("too many events: slow down")
            src = self.graph.sources
            if event == "audio-stream":
                data = audio_bytes(payload)
                if not data:
                    return
                if len(data) > self._max_bytes:
                    raise WireError("payload_too_large", f"audio-stream chunk of {len(data)} bytes exceeds "
                                    f"the {self._max_bytes}-byte limit")
                if not self._audio_bytes.take(len(data)):
                    raise self._over_limit(f"audio over {self._audio_bytes.rate:.0f} bytes/s: slow down")
                self.probe.audio_in(len(data))
                self._bytes_in.inc(len(data))
                self._seq += 1
                src["audio"].on_next(AudioData(self.sid, self._recordings.audio(), data, self._seq))
            elif event == "start-recording":
                src["start"].on_next(parse_start(self.sid, payload, self._recordings.start()))
            elif event == "stop-recording":
                src["stop"].on_next(RecordingStopped(self.sid, self._recordings.stop()))
            elif event == "text-message":
                src["text"].on_next(parse_text(self.sid, payload))
            elif event == "interrupt":
                src["interrupt"].on_next(parse_interrupt(self.sid, payload))
            else:  # the door lets no such event through; it asks here so that it is rate-limited
                raise WireError("bad_request", not_an_event(event))
            if event != "audio-stream" and self.probe.monitor.watched:
                self.probe.publish("in", event=event, payload=payload if event == "text-message" else None)
        except WireError as err:
            if not self.flooded:
                self.reject(err.code, err.message)
        except Exception as err:
            log.exception("session %s: %s handler failed", self.sid, event)
            self.reject("internal", f"internal error handling {event}: {type(err).__name__}")

    def _over_limit(self, message: str) -> WireError:
        """A rate limit refused an event: `rate_limited` for the client, and once it has been over
        its limits for `flood_disconnect_s` without a break, it is disconnected instead (once)."""
        if self._flood.refused() and self._cut_off is not None and not self.flooded:
            self.flooded = True
            spell, refused = self._flood.spell_s, self._flood.count
            log.warning("session %s: over its rate limits for %.1f s (%d events refused): disconnecting",
                        self.sid, spell, refused)
            self._errors.labels("rate_limited").inc()
            self._cut_off("rate_limited", f"over the rate limits for {spell:.0f} s without a break ({refused} "
                          "events refused): disconnecting")
        return WireError("rate_limited", message)

    def reject(self, code: str, message: str) -> None:
        """Tell the client something it sent was refused (rate-limited so floods stay cheap)."""
        if code == "rate_limited" and not self._error_reports.take():
            return
        if len(message) > MAX_ERROR_CHARS:
            message = message[:MAX_ERROR_CHARS] + "… (cut)"
        self._forward(NodeFailed(self.sid, code, message, node="client"))

    # ------------------------------------------------------------------ graph → client

    def _sink_failed(self, port: str, err: Exception) -> None:
        log.error("session %s: stream to client.%s ended by %r", self.sid, port, err)
        self._forward(NodeFailed(self.sid, "internal", f"client.{port} stream failed"))

    def _on_cancel(self, msg: Cancel) -> None:
        self.cancelled_through = max(self.cancelled_through, msg.through_turn)

    def _forward(self, msg: Any) -> None:
        """Hand `msg`'s wire events to the outbox now, in the order the graph produced them."""
        skip = sent = None
        if isinstance(msg, ReplyText | ReplyPiece):
            if msg.turn <= self.cancelled_through:
                return  # went stale after the gate let it through: never reaches the client
            turn, record = msg.turn, _delivered(msg)

            def skip() -> bool:
                return turn <= self.cancelled_through

            def sent() -> None:
                self._delivered.on_next(record)

        elif isinstance(msg, NodeFailed):
            self._errors.labels(msg.code).inc()
        watched = self.probe.monitor.watched
        if watched and isinstance(msg, NodeFailed) and msg.node:  # the wire's `error` names no node
            self.probe.publish("failed", node=msg.node, code=msg.code, message=msg.message, turn=msg.turn)
        for event, payload in to_wire(msg):
            if event == "ai-typing" and isinstance(payload, dict):
                self._typing = bool(payload.get("isTyping"))
            if watched:
                self.probe.publish_out(event, payload)  # audio as a reference, never the bytes
            if self.log is not None:
                self.log.outbound(event, payload)
            self._outlet.put(event, payload, skip=skip, sent=sent)
            sent = None  # the first event carries the reply's text: its hand-off is the delivery

    async def aclose(self) -> None:
        """Dispose the graph and cancel every task of the session (disconnect)."""
        await self.ctx.aclose()
        if self.conversation is not None:
            await self.conversation.flush()
        if self.log is not None:
            self.log.close()
        self.probe.publish("close")


def _delivered(msg: ReplyText | ReplyPiece) -> Delivered:
    """The `delivered` record of a reply (piece) just written to the socket."""
    audio = getattr(msg, "audio", None)  # spoken pieces and replies carry their MP3
    ms = 1000 * mp3_seconds(audio[:4096], len(audio)) if audio else 0.0
    if isinstance(msg, ReplyPiece):
        return Delivered(msg.session, msg.turn, msg.id, msg.text, complete=msg.final, audio_ms=ms)
    return Delivered(msg.session, msg.turn, msg.id, msg.text, complete=True, whole=True, audio_ms=ms)
