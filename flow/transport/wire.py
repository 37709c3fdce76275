"""The Socket.IO wire contract (README, "The protocol, as arrows") in one place: events in, events out.

Incoming payloads are checked here and turned into typed messages, or rejected with a
`WireError(code, message)` that the session sends as an `error` event. Outgoing messages are
turned into `(event, payload)` with exactly the keys the contract names.
"""

from __future__ import annotations

import base64
from typing import Any

from flow.audio.formats import parse_start_payload
from flow.contract.messages import (
    ClientEvent,
    Interrupt,
    NodeFailed,
    RecordingStarted,
    ReplyPiece,
    ReplyText,
    SpokenPiece,
    SpokenReply,
    TextInput,
    Transcript,
    Typing,
    UserTurn,
    now_ms,
)
from flow.sizing import quote

MAX_TEXT_CHARS = 4_000
"""Longest typed user turn; more is a `bad_request` rather than a huge LLM bill."""

CLIENT_EVENTS = ("start-recording", "audio-stream", "stop-recording", "text-message", "interrupt")
RESERVED_EVENTS = frozenset({"connect", "disconnect", "message", "connect_error", "__disconnect_final", "*"})
"""Names python-socketio keeps for itself (server and client side) and its catch-all: a client
event by one of these names is refused at the door (`flow.transport.door`), never dispatched."""


class WireError(Exception):
    """A client payload that breaks the contract; `code` is a protocol error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_start(session: str, payload: Any, recording: int) -> RecordingStarted:
    """`start-recording` (opening recording number `recording`) with an optional object
    (mimeType / format / language / voice)."""
    if payload is None or payload == "":
        return RecordingStarted(session, recording)
    if isinstance(payload, str):
        payload = {"mimeType": payload}
    if not isinstance(payload, dict):
        raise WireError("bad_request", "start-recording takes an optional object")
    try:
        fmt = parse_start_payload(payload)
    except ValueError as err:
        raise WireError("bad_audio", str(err)) from err
    language = payload.get("language")
    voice = payload.get("voice")
    if language is not None and (not isinstance(language, str) or len(language) > 35):
        raise WireError("bad_request", "language must be a BCP-47 tag such as 'en'")
    if voice is not None and (not isinstance(voice, str) or len(voice) > 200):
        raise WireError("bad_request", "voice must be a string")
    return RecordingStarted(session, recording, fmt, language or None, voice or None)


def audio_bytes(payload: Any) -> bytes:
    """The bytes of an `audio-stream` payload (binary attachment, or a list of byte values)."""
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    if isinstance(payload, dict):
        # Some clients wrap the chunk: {audio|data|chunk: <binary>}
        for key in ("audio", "data", "chunk"):
            if isinstance(payload.get(key), bytes | bytearray):
                return bytes(payload[key])
    raise WireError("bad_audio", "audio-stream takes binary audio (ArrayBuffer, Blob, Buffer, bytes)")


def parse_text(session: str, payload: Any) -> TextInput:
    """`text-message`: a string, or an object with `text`."""
    text = payload.get("text") if isinstance(payload, dict) else payload
    if not isinstance(text, str):
        raise WireError("bad_request", "text-message takes a string or an object with 'text'")
    text = text.strip()
    if not text:
        raise WireError("bad_request", "text-message is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise WireError("payload_too_large", f"text-message longer than {MAX_TEXT_CHARS} characters")
    return TextInput(session, text)


def parse_interrupt(session: str, payload: Any) -> Interrupt:
    """`interrupt` with an optional object naming the `responseId` the user barged in on, and
    how much of it was played (`playedMs`, a number of milliseconds ≥ 0; an extension)."""
    rid = payload.get("responseId") if isinstance(payload, dict) else None
    played = payload.get("playedMs") if isinstance(payload, dict) else None
    if played is not None and (isinstance(played, bool) or not isinstance(played, int | float)
                               or not 0 <= played < 1e9):
        raise WireError("bad_request", "interrupt's playedMs is a number of milliseconds (0 or more)")
    return Interrupt(session, rid if isinstance(rid, str) else None,
                     float(played) if played is not None else None)


def not_an_event(event: Any) -> str:
    """The `bad_request` message for an event the protocol does not have (its name quoted, capped)."""
    if event in RESERVED_EVENTS:
        return f"{quote(event)} is a reserved name, not an event of this protocol"
    return f"unknown event {quote(event)}"


def _b64(audio: bytes | None) -> str | None:
    return base64.b64encode(audio).decode("ascii") if audio else None


def to_wire(msg: Any) -> list[tuple[str, Any]]:
    """The `(event, payload)`s a message sent to the client becomes (none if it has no wire form)."""
    if isinstance(msg, ReplyPiece):
        audio = msg.audio if isinstance(msg, SpokenPiece) else None
        events: list[tuple[str, Any]] = []
        if msg.text or not msg.final:  # an empty final piece only closes the reply
            events.append(("ai-response-chunk", {
                "id": msg.id, "replyTo": msg.reply_to, "seq": msg.seq, "text": msg.text, "audio": _b64(audio),
                "audioFormat": "mp3",
            }))
        if msg.final:
            events.append(("ai-response-end", {"id": msg.id, "replyTo": msg.reply_to}))
        return events
    one = _one(msg)
    return [one] if one else []


def _one(msg: Any) -> tuple[str, Any] | None:
    if isinstance(msg, Transcript):
        return "speech-result", {
            "text": msg.text, "isFinal": msg.is_final, "utteranceId": msg.utterance_id,
        }
    if isinstance(msg, UserTurn):
        return "message-received", {
            "id": msg.id, "text": msg.text, "source": msg.source, "timestamp": msg.timestamp,
        }
    if isinstance(msg, Typing):
        return "ai-typing", {"isTyping": msg.is_typing}
    if isinstance(msg, ReplyText):
        audio = msg.audio if isinstance(msg, SpokenReply) else None
        return "ai-response", {
            "id": msg.id,
            "replyTo": msg.reply_to,
            "text": msg.text,
            "audio": _b64(audio),
            "audioFormat": "mp3",
            "timestamp": now_ms(),
        }
    if isinstance(msg, NodeFailed):
        return "error", {"code": msg.code, "message": msg.message}
    if isinstance(msg, ClientEvent):
        return msg.name, msg.payload
    return None
