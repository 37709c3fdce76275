"""Conversations in one SQLite file: they survive a restart of the (single) server.

sqlite3 calls block, so each runs in a thread of its own, one at a time (one connection, a lock);
the event loop only awaits them. Expired rows are ignored on read and deleted now and then.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from flow.conversations.store import DEFAULT_TTL_S, ConversationStore, Exchange, decode, encode

SWEEP_EVERY = 500
"""Delete expired rows once per this many saves."""


class SqliteStore(ConversationStore):
    name = "sqlite"

    def __init__(self, path: str, ttl_s: float = DEFAULT_TTL_S) -> None:
        super().__init__(ttl_s)
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._saves = 0

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5.0)
            db.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS conversations "
                       "(id TEXT PRIMARY KEY, history TEXT NOT NULL, expires REAL NOT NULL)")
            self._db = db
        return self._db

    def _run(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._conn().execute(sql, args).fetchall()

    async def load(self, conversation_id: str) -> list[Exchange] | None:
        rows = await asyncio.to_thread(
            self._run, "SELECT history FROM conversations WHERE id = ? AND expires > ?",
            (conversation_id, time.time()))
        return decode(rows[0][0]) if rows else None

    async def save(self, conversation_id: str, history: Sequence[Exchange]) -> None:
        self._saves += 1
        sweep = self._saves % SWEEP_EVERY == 0
        text, expires = encode(history), time.time() + self.ttl_s

        def write() -> None:
            self._run("INSERT INTO conversations (id, history, expires) VALUES (?, ?, ?) "
                      "ON CONFLICT(id) DO UPDATE SET history = excluded.history, expires = excluded.expires",
                      (conversation_id, text, expires))
            if sweep:
                self._run("DELETE FROM conversations WHERE expires <= ?", (time.time(),))

        await asyncio.to_thread(write)

    async def check(self) -> None:
        await asyncio.to_thread(self._run, "SELECT 1")

    async def aclose(self) -> None:
        def close() -> None:
            with self._lock:
                if self._db is not None:
                    self._db.close()
                    self._db = None

        await asyncio.to_thread(close)

    def describe(self) -> str:
        return f"sqlite ({Path(self.path).name})"
