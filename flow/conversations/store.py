"""The conversation store: its interface and what it holds.

A conversation is what the user and the assistant said, exchange by exchange, as the responder
keeps it (the user's words, and what the user heard of each reply). It is kept under an
unguessable id so that a client that reconnects — a flaky network, a redeploy, a worker that
died — continues where it was, on whichever worker it lands. Each save renews the conversation's
TTL; an expired conversation is unknown, and a client that asks for it starts a new one.
"""

from __future__ import annotations

import json
import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_TTL_S = 24 * 3600
"""How long a conversation nobody continues is kept (`VOICEGRAPH_CONVERSATION_TTL`)."""
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,64}")
"""What a conversation id may look like; anything else is unknown without asking the store."""
MAX_RECORD_BYTES = 1 << 20
"""A stored history larger than this is cut from its oldest exchanges (a bound, not a policy:
the responder's window is far smaller)."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """One past exchange: what the user said and what they heard of the reply (None: nothing)."""

    user: str
    heard: str | None


def new_conversation_id() -> str:
    """128 random bits, URL-safe (22 characters): unguessable, so an id is a capability."""
    return secrets.token_urlsafe(16)


def valid_id(value: object) -> bool:
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def encode(history: Sequence[Exchange]) -> str:
    """A history as compact JSON (`[[user, heard], …]`), its oldest exchanges dropped beyond
    `MAX_RECORD_BYTES`."""
    rows = [[ex.user, ex.heard] for ex in history]
    text = json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
    while rows and len(text.encode()) > MAX_RECORD_BYTES:
        rows = rows[max(1, len(rows) // 4):]
        text = json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
    return text


def decode(text: str | bytes) -> list[Exchange]:
    """The history `encode` wrote; a record that is not one reads as empty."""
    try:
        rows = json.loads(text)
    except ValueError:
        return []
    if not isinstance(rows, list):
        return []
    return [Exchange(r[0], r[1] if isinstance(r[1], str) else None) for r in rows
            if isinstance(r, list) and len(r) == 2 and isinstance(r[0], str)]


class ConversationStore(ABC):
    """Where conversations are kept. Every method is a coroutine and none blocks the loop."""

    name = ""

    def __init__(self, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.ttl_s = ttl_s

    @abstractmethod
    async def load(self, conversation_id: str) -> list[Exchange] | None:
        """The history kept under `conversation_id`, or None if unknown or expired."""

    @abstractmethod
    async def save(self, conversation_id: str, history: Sequence[Exchange]) -> None:
        """Keep `history` under `conversation_id` (replacing what was there) for `ttl_s` more."""

    @abstractmethod
    async def check(self) -> None:
        """Raise if the store cannot be reached now (for `/health`)."""

    async def aclose(self) -> None:
        """Release connections or files (server shutdown); nothing to release by default."""
        return None

    def describe(self) -> str:
        """What `/health` and the log call this store (no credentials)."""
        return self.name
