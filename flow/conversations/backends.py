"""`open_store`: which conversation store `VOICEGRAPH_STORE` names (its backend module is imported
only when named, so the Redis client is needed only by a Redis store)."""

from __future__ import annotations

from flow.conversations.store import DEFAULT_TTL_S, ConversationStore


def open_store(url: str | None, ttl_s: float = DEFAULT_TTL_S) -> ConversationStore:
    """The store `VOICEGRAPH_STORE` names: `memory` (or empty), `sqlite:///path.db`, `redis://…`."""
    url = (url or "memory").strip()
    if url in ("memory", "memory://"):
        from flow.conversations.memory import MemoryStore

        return MemoryStore(ttl_s)
    if url.startswith("sqlite:///"):
        from flow.conversations.sqlite import SqliteStore

        # as SQLAlchemy reads it: sqlite:///relative/path.db, sqlite:////absolute/path.db
        path = url.removeprefix("sqlite:///")
        if not path:
            raise ValueError("VOICEGRAPH_STORE=sqlite:///path.db needs a file path")
        return SqliteStore(path, ttl_s)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from flow.conversations.redis import RedisStore

        return RedisStore(url, ttl_s)
    raise ValueError(f"VOICEGRAPH_STORE: unknown store {url.split(':', 1)[0]!r} "
                     "(memory, sqlite:///path.db or redis://host:port/db)")
