"""How Piper's model runs here: on the CPU pool's threads alone, stoppable by a cancel, and giving
its memory back when done.

`open_session` builds the onnxruntime session with as many intra-op threads as each pool thread
has cores (one, when the pool has a thread per core): onnxruntime's default, a spinning thread per
core per session on top of the pool's own, made 2 cores do 13-30 % more CPU work for the same
speech. One loaded voice serves every thread, and Piper calls `session.run(None, feed)` without
options; `TerminableSession` runs it with the calling thread's `RunOptions`, which a cancel can
terminate and which shrink onnxruntime's memory arena when the run ends. `give_back_memory`
returns what glibc keeps of the freed buffers.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flow.contract.cpu_pool import CancelToken


def open_session(model: Path, threads: int) -> Any:
    """An onnxruntime CPU session for `model` that computes on at most `threads` threads (the
    calling one included), none of them spinning while idle."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1  # sequential execution: the inter-op pool is never used
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])


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
    def terminable(self, cancel: CancelToken) -> Iterator[None]:
        """Within the block, this thread's runs end (onnxruntime raises) once `cancel` is set, and
        each run gives its working memory back when it ends."""
        import onnxruntime

        options = onnxruntime.RunOptions()
        # otherwise the arena keeps the largest run's peak for good (measured: 600 ids, +342 MB
        # kept, +37 MB with it). Short runs shrink too: skipping them left up to ~60 MB in the
        # arena after a long reply whose last run was short, and shrinking a short run costs
        # nothing measurable (a 74-id job: 237 vs 232 ms median, n=30 each, loaded machine)
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        self._local.options = options
        try:
            with cancel.hook(lambda: setattr(options, "terminate", True)):
                yield
        finally:
            self._local.options = None
