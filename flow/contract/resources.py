"""Process-wide things every session shares: settings, one OpenAI client, loaded models, a CPU pool.

Loading a model or opening an HTTP connection pool per session would multiply memory and start-up
time by the number of clients; providers therefore come from here, built once and reused.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from flow.config import Settings
from flow.contract.cpu_pool import CpuPool
from flow.monitor import Monitor

T = TypeVar("T")


class Resources:
    """Shared, lazily built provider clients and models for one server process."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._shared: dict[Any, Any] = {}
        self._lock = threading.Lock()
        self._openai: Any = None
        self.monitor = Monitor()
        """What observers (the dashboard) learn of sessions; free while nobody watches."""
        workers = max(1, os.cpu_count() or 1)
        self.cpu_workers = workers
        self.cpu_pool = CpuPool(workers, name="voicegraph-cpu")
        """Bounded pool for CPU-heavy work (offline STT/TTS, encoding): never the event loop."""

    def shared(self, key: Any, factory: Callable[[], T]) -> T:
        """Build `factory()` once per key for the whole process (thread-safe)."""
        with self._lock:
            if key not in self._shared:
                self._shared[key] = factory()
            return self._shared[key]

    def openai(self) -> Any:
        """The one `AsyncOpenAI` client, with real-time timeouts and bounded retries."""
        if self._openai is None:
            from openai import AsyncOpenAI

            s = self.settings
            key = s.openai_api_key.get_secret_value() if s.openai_api_key else "not-needed"
            self._openai = AsyncOpenAI(
                api_key=key,
                base_url=s.openai_base_url or None,
                timeout=s.openai_timeout_s,
                max_retries=s.openai_max_retries,
            )
        return self._openai

    async def run_cpu(self, fn: Callable[..., T], *args: Any, owner: Hashable = None) -> T:
        """Run blocking `fn(*args)` in the shared CPU pool and await it on the loop.

        `owner` (a session id) is what the pool shares its threads fairly between. Cancelling the
        await drops the job if still queued, else passes `fn` its `cancel` token if it takes one
        (`flow.contract.cpu_pool` says how a job stops).
        """
        return await self.cpu_pool.run(fn, *args, owner=owner)

    async def aclose(self) -> None:
        """Close the HTTP client and stop the pool (server shutdown)."""
        if self._openai is not None:
            await self._openai.close()
            self._openai = None
        for thing in list(self._shared.values()):
            close = getattr(thing, "close", None)
            if callable(close):  # e.g. the pocketsphinx worker processes
                try:
                    await asyncio.to_thread(close)
                except Exception:
                    logging.getLogger("voicegraph.resources").exception("closing %r failed", thing)
        self._shared.clear()
        self.cpu_pool.shutdown(wait=False, cancel_futures=True)
