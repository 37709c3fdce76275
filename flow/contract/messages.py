"""Typed messages that travel on graph edges.

Every message is a frozen dataclass naming its session and, where it belongs to one, the user turn
(`turn`, a per-session counter that only grows). The interrupt gate decides staleness by comparing
turn numbers, so nothing downstream needs to know why a turn became stale.

Audio is keyed the same way: start, data, stop, decoded chunks and end of one recording share its
`recording` number (per session, only grows), so state keyed by it cannot mix two recordings
however late a decoder delivers.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field


def now_ms() -> int:
    """Wall-clock milliseconds, the unit of every `timestamp` on the wire."""
    return int(time.time() * 1000)


Marks = tuple[tuple[str, float], ...]
"""`(stage, wall-clock ms)` pairs a message carries downstream, so the node that reports a turn's
timing (the interrupt gate's `turn-metrics`) learns them on its edges, not from shared state."""


def new_id() -> str:
    """A short unique id for turns, utterances and responses."""
    return uuid.uuid4().hex[:16]


# --------------------------------------------------------------------------- client → graph


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """What the client said (or we sniffed) about the bytes of a recording.

    `container` is one of `webm`, `ogg`, `wav`, `mp3`, `pcm16`; `rate`/`channels` matter only for
    raw `pcm16`, containers carry their own.
    """

    container: str
    rate: int = 16_000
    channels: int = 1


@dataclass(frozen=True, slots=True)
class RecordingStarted:
    """`start-recording`: audio that follows belongs to a new recording."""

    session: str
    recording: int
    format: AudioFormat | None = None
    language: str | None = None
    voice: str | None = None


@dataclass(frozen=True, slots=True)
class AudioData:
    """One `audio-stream` payload, undecoded: an arbitrary byte slice of the recording."""

    session: str
    recording: int
    """Audio with no recording open opens a new one (a client may skip `start-recording`)."""
    data: bytes
    seq: int
    received_ms: int = field(default_factory=now_ms)


@dataclass(frozen=True, slots=True)
class RecordingStopped:
    """`stop-recording`: finalize the current utterance now."""

    session: str
    recording: int


@dataclass(frozen=True, slots=True)
class TextInput:
    """`text-message`: a typed user turn, not yet accepted."""

    session: str
    text: str
    received_ms: int = field(default_factory=now_ms)


@dataclass(frozen=True, slots=True)
class Interrupt:
    """`interrupt`: every response in flight is stale (optionally naming the one heard)."""

    session: str
    response_id: str | None = None
    played_ms: float | None = None
    """How much of the reply the client had played (`playedMs`): the history keeps only that."""


# --------------------------------------------------------------------------- audio inside the graph


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Decoded PCM (signed little-endian) with its own format and audio-time position.

    `timestamp_ms` is the audio time of the first sample since `recording` began, so silence is
    measured in audio, not wall-clock, time.
    """

    session: str
    recording: int
    audio: bytes
    rate: int
    width: int
    channels: int
    timestamp_ms: float

    @property
    def samples(self) -> int:
        return len(self.audio) // (self.width * self.channels)

    @property
    def duration_ms(self) -> float:
        return 1000.0 * self.samples / self.rate


@dataclass(frozen=True, slots=True)
class RecordingEnded:
    """Every chunk of `recording` has been decoded and emitted before this (and every older
    recording has ended before it)."""

    session: str
    recording: int


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The finalizer heard speech begin (used for barge-in and the dashboard)."""

    session: str
    utterance_id: str
    timestamp_ms: float


@dataclass(frozen=True, slots=True)
class Withdrawn:
    """Speech resumed after a tentative utterance: it will never be committed, and work started on
    it must stop. The speech it held is not lost: the next tentative utterance and the commit
    cover all of it."""

    session: str
    utterance_id: str


@dataclass(frozen=True, slots=True)
class Utterance:
    """One spoken turn's PCM, closed by silence, by `stop-recording` or by the length cap."""

    session: str
    id: str
    audio: bytes
    rate: int
    width: int
    channels: int
    recording: int
    language: str | None = None
    voice: str | None = None
    """The voice `start-recording` asked for, carried to the synthesizer."""
    reason: str = "silence"  # silence | early | stop | max_length | tentative
    endpointed_ms: int = field(default_factory=now_ms)
    """Wall clock when the utterance was closed (after the trailing silence, or at the stop)."""
    speech_end_ms: int | None = None
    """Wall clock when the speech itself ended: `endpointed_ms` less the audio time between the
    last speech frame and the close (the endpointing wait)."""

    @property
    def duration_ms(self) -> float:
        return 1000.0 * len(self.audio) / (self.rate * self.width * self.channels)


# --------------------------------------------------------------------------- turns and replies


@dataclass(frozen=True, slots=True)
class Transcript:
    """A recognition result for one utterance (`speech-result`)."""

    session: str
    utterance_id: str
    text: str
    is_final: bool = True
    speech_end_ms: int | None = None
    """Wall clock when the user stopped speaking (see `Utterance.speech_end_ms`), for per-turn latency."""
    voice: str | None = None
    endpointed_ms: int | None = None
    """Wall clock when the utterance was closed: `endpointed_ms - speech_end_ms` is the endpointing wait."""
    tentative: bool = False
    """Speculation: the words of a tentative utterance (never sent to the client)."""


@dataclass(frozen=True, slots=True)
class UserTurn:
    """A user turn the gate accepted (`message-received`): `turn` orders, `id` names it on the wire."""

    session: str
    turn: int
    id: str
    text: str
    source: str  # "text" | "voice"
    timestamp: int = field(default_factory=now_ms)
    voice: str | None = None
    marks: Marks = ()
    """When its stages happened (speech_end, endpointed, transcript, accepted)."""
    tentative: bool = False
    """Speculative: the user paused but may go on. Its work may start, but nothing of it reaches
    the client or the history until the same turn number comes again committed."""
    utterance_id: str | None = None
    """The utterance a voice turn was heard in (a withdrawal names it)."""


@dataclass(frozen=True, slots=True)
class ReplyText:
    """The assistant's text answer to one turn."""

    session: str
    turn: int
    id: str
    reply_to: str
    text: str
    voice: str | None = None
    """The voice the user asked for (`start-recording`), if any."""
    marks: Marks = ()
    """When the reply's stages happened (first_token, last_token)."""


@dataclass(frozen=True, slots=True)
class SpokenReply(ReplyText):
    """A reply with its synthesized speech; `audio` is None when synthesis failed."""

    audio: bytes | None = None
    audio_format: str = "mp3"


@dataclass(frozen=True, slots=True)
class ReplyPiece:
    """One speakable piece (about a sentence) of a streamed reply; `final` marks the last one."""

    session: str
    turn: int
    id: str
    reply_to: str
    seq: int
    text: str
    final: bool = False
    voice: str | None = None
    marks: Marks = ()
    """When the reply's stages happened so far (first_token; last_token on the final piece)."""


@dataclass(frozen=True, slots=True)
class SpokenPiece(ReplyPiece):
    """A reply piece with its MP3 (`ai-response-chunk`); `audio` is None when synthesis failed."""

    audio: bytes | None = None


@dataclass(frozen=True, slots=True)
class Typing:
    """`ai-typing`: the assistant starts or stops working on `turn`."""

    session: str
    turn: int
    is_typing: bool


# --------------------------------------------------------------------------- control


@dataclass(frozen=True, slots=True)
class Cancel:
    """Every turn numbered ≤ `through_turn` is stale: its in-flight work must stop, its output drop.

    Sent by the interrupt gate (an `interrupt`, barge-in on speech, or a newer accepted turn) on its
    `cancel` output; every node doing per-turn work declares a `cancel` input wired to it.
    """

    session: str
    through_turn: int
    reason: str = "interrupt"  # interrupt | speech | newer turn | withdrawn | llm_failed
    response_id: str | None = None
    """The reply that was cancelled, when one had started."""
    played_ms: float | None = None
    """An interrupt's `playedMs`: how much of `response_id` the user heard."""


@dataclass(frozen=True, slots=True)
class Delivered:
    """What was actually written to the client's socket: one reply piece, or a whole reply.

    The client node emits it on its `delivered` output after the send; the responder keeps the
    conversation history from these (what the user heard), never from what it generated.
    """

    session: str
    turn: int
    response_id: str
    text: str
    complete: bool
    """The reply was delivered to its end (`ai-response`, or the final piece)."""
    whole: bool = False
    """`text` is the whole reply (`ai-response`), not one piece of it."""
    audio_ms: float = 0.0
    """How long its audio plays (0: none), to cut the history at an interrupt's `playedMs`."""


# --------------------------------------------------------------------------- failures and extensions


@dataclass(frozen=True, slots=True)
class NodeFailed:
    """A failure turned into a message: `code` is a protocol error code, `node` the step id."""

    session: str
    code: str
    message: str
    node: str = ""
    turn: int | None = None


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """An extension event a graph chooses to emit verbatim (`name` on the wire, `payload` as is)."""

    session: str
    name: str
    payload: dict
