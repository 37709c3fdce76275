"""What decodes recordings in this process: ffmpeg children and in-process opus decoders (tests
check that a session leaves none behind)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from flow.audio import opus
from flow.bench.procs import children


def ffmpeg_children() -> list[int]:
    """Live (not zombie) ffmpeg processes this process started."""
    found = []
    for pid in children(os.getpid()):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = Path(f"/proc/{pid}/stat").read_text()
            name, state = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()[0]
            if "ffmpeg" in name and state != "Z":
                found.append(pid)
    return found


def live_decoders() -> int:
    """ffmpeg decoder processes plus in-process opus decoders still running."""
    return len(ffmpeg_children()) + opus.running()
