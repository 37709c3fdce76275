"""How Piper's model runs here: stoppable by a cancel, and giving its memory back when done.

One loaded voice serves every thread, and Piper calls `session.run(None, feed)` without options;
`TerminableSession` runs it with the calling thread's `RunOptions`, which a cancel can terminate
and which shrink onnxruntime's memory arena when the run ends. `give_back_memory` returns what
glibc keeps of the freed buffers.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import threading
from collections.abc import Iterator
from typing import Any

from flow.contract.cpu_pool import CancelToken

SHRINK_ABOVE = 100
"""Phoneme ids above which a run shrinks the memory arena when it ends: shorter runs leave at most
~45 MB in it (a model run takes about 0.45 MB per id)."""


@functools.cache
def _malloc_trim() -> Any:
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc
    except (OSError, AttributeError):
        return None


def give_back_memory() -> None:
    """Return the C heap's free pages to the system (glibc's `malloc_trim`; a no-op elsewhere).

    A model run allocates and frees tens to hundreds of megabytes of buffers; glibc keeps much of
    that in its heaps (measured: 24 runs of 400 ids kept +61 MB; with a trim after each job, +3 MB).
    It takes a few milliseconds, next to a job's second.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class TerminableSession:
    """Piper's onnxruntime session, run with the calling thread's `RunOptions`.

    Piper calls `session.run(None, feed)` without options, and one voice serves every thread, so
    the options a cancel can terminate (and that shrink the memory arena after each run) come
    from a thread-local that `terminable` sets.
    """

    def __init__(self, session: Any) -> None:
        self.session = session
        self._local = threading.local()

    def run(self, output_names: Any, input_feed: Any, run_options: Any = None) -> Any:
        return self.session.run(output_names, input_feed, run_options or getattr(self._local, "options", None))

    def __getattr__(self, name: str) -> Any:  # everything else piper might use
        return getattr(self.session, name)

    @contextlib.contextmanager
    def terminable(self, cancel: CancelToken, shrink: bool = True) -> Iterator[None]:
        """Within the block, this thread's runs end (onnxruntime raises) once `cancel` is set;
        with `shrink`, each run gives its working memory back when it ends."""
        import onnxruntime

        options = onnxruntime.RunOptions()
        if shrink:
            # otherwise the arena keeps the largest run's peak for good (measured: 600 ids, +342 MB
            # kept, +37 MB with it); it costs ~35 ms a run, so short runs (SHRINK_ABOVE) skip it
            options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        self._local.options = options
        try:
            with cancel.hook(lambda: setattr(options, "terminate", True)):
                yield
        finally:
            self._local.options = None
