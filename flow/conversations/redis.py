"""Conversations in Redis: every worker of a cluster reads and writes the same ones.

One key per conversation (`voicegraph:conversation:<id>`), its value the history's JSON, its
Redis TTL the conversation's (renewed by each save), so Redis itself forgets expired ones.
"""

from __future__ import annotations

from collections.abc import Sequence

from flow.conversations.store import DEFAULT_TTL_S, ConversationStore, Exchange, decode, encode

KEY_PREFIX = "voicegraph:conversation:"


def import_redis():
    """`redis.asyncio`, or an error that says how to install it (the `redis` extra)."""
    try:
        import redis.asyncio as aioredis
    except ImportError as err:
        raise ValueError("Redis needs the redis client: pip install 'voicegraph[redis]'") from err
    return aioredis


class RedisStore(ConversationStore):
    name = "redis"

    def __init__(self, url: str, ttl_s: float = DEFAULT_TTL_S) -> None:
        super().__init__(ttl_s)
        aioredis = import_redis()

        self.url = url
        self._redis = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)

    async def load(self, conversation_id: str) -> list[Exchange] | None:
        value = await self._redis.get(KEY_PREFIX + conversation_id)
        return decode(value) if value is not None else None

    async def save(self, conversation_id: str, history: Sequence[Exchange]) -> None:
        await self._redis.set(KEY_PREFIX + conversation_id, encode(history), px=max(1, round(self.ttl_s * 1000)))

    async def check(self) -> None:
        await self._redis.ping()

    async def aclose(self) -> None:
        await self._redis.aclose()
