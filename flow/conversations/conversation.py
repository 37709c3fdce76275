"""One session's conversation: its id, the history it started with, and saving as it changes.

The server resolves it at connect (a client's `auth: {conversationId}` that the store knows is
resumed; otherwise a new id) and hands it to the session's context, where the responder — the
node that owns history — finds it: it starts from `history` and calls `save` after every change
(its `remember` param). Saves are coalesced: at most one write in flight per conversation, and
the next one carries the latest history, so a burst of deliveries costs one or two writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from flow.conversations.store import ConversationStore, Exchange

log = logging.getLogger("voicegraph.conversations")

FLUSH_TIMEOUT_S = 2.0
"""How long a closing session waits for its last save."""


class Conversation:
    """The conversation a session continues (or began), bound to the store that keeps it."""

    def __init__(self, conversation_id: str, store: ConversationStore,
                 history: Sequence[Exchange] = (), resumed: bool = False) -> None:
        self.id = conversation_id
        self.store = store
        self.history: tuple[Exchange, ...] = tuple(history)
        """What was said before this session (empty for a new conversation)."""
        self.resumed = resumed
        self._pending: tuple[Exchange, ...] | None = None
        self._writer: asyncio.Task | None = None

    def save(self, history: Sequence[Exchange]) -> None:
        """Keep `history` as the conversation's (written soon, off the caller's stack)."""
        self._pending = tuple(history)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write(), name=f"save-{self.id[:6]}")

    async def _write(self) -> None:
        while self._pending is not None:
            history, self._pending = self._pending, None
            try:
                await self.store.save(self.id, history)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the conversation goes on in memory; the next save retries
                log.warning("saving conversation %s… to %s failed: %s", self.id[:6], self.store.describe(), err)

    async def flush(self, timeout: float = FLUSH_TIMEOUT_S) -> None:
        """Wait (at most `timeout`) until the latest history is written."""
        if self._writer is not None and not self._writer.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), timeout)
            except TimeoutError:
                log.warning("conversation %s…: last save still pending after %.1f s", self.id[:6], timeout)
