"""`flow.heap.trim` gives freed C heap back to the OS: what the soak's RSS step was made of.

In a fresh interpreter (so the pytest process's own heap plays no part): 40 MB of 2 KB buffers
(above pymalloc's 512 bytes, so glibc's malloc holds them, as it holds queued audio frames), one
small buffer allocated after them so the heap's top stays in use, then all the big ones freed.
glibc keeps that memory resident (it only trims the top); `trim()` returns it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flow import heap

SCRIPT = r"""
import json
from flow import heap

def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

heap.trim()
base = rss_kb()
burst = [bytes(2000) for _ in range(20_000)]
pin = [bytes(2000) for _ in range(4)]
full = rss_kb()
del burst
freed = rss_kb()
released = heap.trim()
print(json.dumps({"base": base, "full": full, "freed": freed, "trimmed": rss_kb(), "released": released}))
"""


@pytest.mark.skipif(not heap.available(), reason="malloc_trim is glibc's")
def test_trim_returns_freed_heap_to_the_os() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True,
                         cwd=Path(heap.__file__).parents[1])  # this checkout's `flow`
    kb = json.loads(out.stdout)
    burst_kb = kb["full"] - kb["base"]
    assert burst_kb > 30_000, kb  # the burst was resident
    assert kb["freed"] - kb["base"] > burst_kb // 2, kb  # freeing alone left most of it resident
    assert kb["released"], kb
    assert kb["trimmed"] - kb["base"] < burst_kb // 4, kb  # trimming gave it back

