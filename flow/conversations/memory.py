"""The default store: conversations in this process's memory (lost when it stops).

Enough for one worker: a client that reconnects to the same process continues its conversation.
Expired conversations are swept on writes, so the dict never holds more than was saved in the
last TTL.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence

from flow.conversations.store import DEFAULT_TTL_S, ConversationStore, Exchange

MAX_CONVERSATIONS = 10_000
"""Most conversations kept at once; beyond it the least recently saved go first. A full window of
20 exchanges is a few KB, so this bounds the store at tens of MB (a busy server that needs more
keeps its conversations in SQLite or Redis)."""


class MemoryStore(ConversationStore):
    name = "memory"

    def __init__(self, ttl_s: float = DEFAULT_TTL_S, max_conversations: int = MAX_CONVERSATIONS) -> None:
        super().__init__(ttl_s)
        self.max_conversations = max_conversations
        self._kept: OrderedDict[str, tuple[float, tuple[Exchange, ...]]] = OrderedDict()

    async def load(self, conversation_id: str) -> list[Exchange] | None:
        kept = self._kept.get(conversation_id)
        if kept is None or kept[0] <= time.monotonic():
            return None
        return list(kept[1])

    async def save(self, conversation_id: str, history: Sequence[Exchange]) -> None:
        now = time.monotonic()
        self._kept.pop(conversation_id, None)
        self._kept[conversation_id] = (now + self.ttl_s, tuple(history))
        # least recently saved first: expired ones, then any beyond the bound
        while self._kept:
            oldest, (expires, _) = next(iter(self._kept.items()))
            if expires > now and len(self._kept) <= self.max_conversations:
                break
            del self._kept[oldest]

    async def check(self) -> None:
        return None
