"""Give the C heap's freed memory back to the operating system now and then (glibc's `malloc_trim`).

Why: a soak (`voicegraph bench --soak`) showed the server's RSS stepping up by tens of MB and then
staying there while what is allocated did not grow: Python's allocated blocks and glibc's bytes in
use stayed flat, the heap held the difference as free chunks. Bursts do it (a loaded machine lets
hundreds of 40 ms audio frames queue per connection; each is a malloc'd buffer above pymalloc's
512 bytes), and glibc only returns free memory at the very top of the heap, above a threshold that
grows by itself once large blocks have been freed. So every worse burst than the last raised the
process's footprint for good: +54 % over a 30-minute soak on a busy machine. `malloc_trim(0)` also
releases the free pages inside the heap; called every `TRIM_EVERY_S` from a worker thread (ctypes
drops the GIL; the call takes a few ms on a ~50 MB heap), the footprint follows what is in use.

Process-wide, so `voicegraph serve` starts it (like its `gc.freeze()`), not `VoicegraphServer`:
an application embedding the server owns its own heap. Elsewhere than glibc (musl, macOS) there is
no `malloc_trim` and this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable

log = logging.getLogger("voicegraph.heap")

TRIM_EVERY_S = 30.0
"""How often the heap is trimmed (`VOICEGRAPH_HEAP_TRIM_S` sets it for `voicegraph serve`): often
enough that a burst's leftovers go within a minute, rarely enough that the cost is nothing (a few
ms in a thread, but the heap's lock is held meanwhile, so the loop's own mallocs may wait)."""


def _find_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _find_trim()


def available() -> bool:
    """Whether this C library can trim (glibc)."""
    return _TRIM is not None


def trim() -> bool:
    """Return the heap's free pages to the OS now (blocking: call it off the event loop). True
    when some memory was released."""
    return bool(_TRIM(0)) if _TRIM is not None else False


async def trim_periodically(every_s: float = TRIM_EVERY_S) -> None:
    """`trim()` in a worker thread every `every_s` until cancelled (nothing to do without glibc,
    or with `every_s` 0)."""
    if _TRIM is None or every_s <= 0:
        log.debug("the heap is not trimmed (%s)", "off" if _TRIM is not None else "no malloc_trim in this C library")
        return
    while True:
        await asyncio.sleep(every_s)
        await asyncio.to_thread(trim)
