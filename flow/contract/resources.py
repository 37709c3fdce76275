"""Process-wide things every session shares: settings, provider clients, loaded models, a CPU pool.

Loading a model or opening an HTTP connection pool per session would multiply memory and start-up
time by the number of clients; providers therefore come from here, built once and reused.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from flow.config import Settings
from flow.contract.cpu_pool import CpuPool
from flow.conversations.backends import open_store
from flow.conversations.store import ConversationStore
from flow.metrics import Metrics
from flow.monitor import Monitor

T = TypeVar("T")


class Resources:
    """Shared, lazily built provider clients and models for one server process."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._shared: dict[Any, Any] = {}
        self._lock = threading.Lock()
        self.monitor = Monitor(self.settings.worker)
        """What observers (the dashboard) learn of sessions; free while nobody watches."""
        self._conversations: ConversationStore | None = None
        self.metrics = Metrics()
        """What `GET /metrics` tells Prometheus (a registry of this process's server only)."""
        workers = max(1, os.cpu_count() or 1)
        self.cpu_workers = workers
        self.cpu_pool = CpuPool(workers, name="voicegraph-cpu")
        """Bounded pool for CPU-heavy work (offline STT/TTS, encoding): never the event loop."""

    @property
    def conversations(self) -> ConversationStore:
        """Where conversations are kept (`VOICEGRAPH_STORE`), opened on first use."""
        if self._conversations is None:
            self._conversations = open_store(self.settings.store, self.settings.conversation_ttl_s)
        return self._conversations

    def shared(self, key: Any, factory: Callable[[], T]) -> T:
        """Build `factory()` once per key for the whole process (thread-safe)."""
        with self._lock:
            if key not in self._shared:
                self._shared[key] = factory()
            return self._shared[key]

    async def run_cpu(self, fn: Callable[..., T], *args: Any, owner: Hashable = None) -> T:
        """Run blocking `fn(*args)` in the shared CPU pool and await it on the loop.

        `owner` (a session id) is what the pool shares its threads fairly between. Cancelling the
        await drops the job if still queued, else passes `fn` its `cancel` token if it takes one
        (`flow.contract.cpu_pool` says how a job stops).
        """
        return await self.cpu_pool.run(fn, *args, owner=owner)

    async def aclose(self) -> None:
        """Close what `shared` built (HTTP clients, worker processes) and stop the pool (shutdown)."""
        for thing in list(self._shared.values()):
            close = getattr(thing, "aclose", None) or getattr(thing, "close", None)
            if callable(close):  # e.g. an HTTP client (async close), the pocketsphinx workers (blocking)
                try:
                    if inspect.iscoroutinefunction(close):
                        await close()
                    else:
                        await asyncio.to_thread(close)
                except Exception:
                    logging.getLogger("voicegraph.resources").exception("closing %r failed", thing)
        self._shared.clear()
        if self._conversations is not None:
            try:
                await self._conversations.aclose()
            except Exception:
                logging.getLogger("voicegraph.resources").exception("closing the conversation store failed")
            self._conversations = None
        self.cpu_pool.shutdown(wait=False, cancel_futures=True)
