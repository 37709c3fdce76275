"""What a speech-to-text, LLM or text-to-speech provider must offer the nodes that use it.

Providers are shared by every session of a process (one HTTP client, one loaded model), so they
hold no per-session state: the history a responder needs is passed in on every call. A provider
raises `ProviderError` for failures it understands; the node turns any exception into a
`NodeFailed` message with the node's error code. Cancellation (`asyncio.CancelledError`) is never
caught and wrapped: it is how barge-in aborts a call, and a provider that computes locally stops
its work on it, not only its await. `owner` (the session id) lets such a provider share the CPU
pool fairly between sessions; remote providers ignore it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class ProviderError(Exception):
    """A provider call failed in a way worth telling the client (message is safe to show)."""


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One entry of a conversation history, as chat APIs take it."""

    role: str  # "system" | "user" | "assistant"
    content: str


@runtime_checkable
class Transcriber(Protocol):
    """Utterance PCM in, final text out."""

    name: str

    async def transcribe(
        self, pcm: bytes, rate: int, width: int, channels: int, *, language: str | None = None,
        owner: str | None = None,
    ) -> str: ...


@runtime_checkable
class Responder(Protocol):
    """Conversation in, reply text out as a stream of text pieces (tokens or whole sentences)."""

    name: str

    def reply(self, messages: list[ChatMessage]) -> AsyncIterator[str]: ...


@runtime_checkable
class Synthesizer(Protocol):
    """Text in, MP3 out: whole (`synthesize`) or piece by piece (`speak`).

    `speak` yields MP3 files in order that concatenate into one playable file (none if there is
    nothing the voice can say); a caller that stops iterating stops the work, so it can bound
    what a reply costs as the pieces come.
    """

    name: str

    async def synthesize(self, text: str, *, voice: str | None = None, owner: str | None = None) -> bytes: ...

    def speak(self, text: str, *, voice: str | None = None, owner: str | None = None) -> AsyncIterator[bytes]: ...
