"""What decodes recordings in this process: ffmpeg children and in-process opus decoders (tests
check that a session leaves none behind)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from flow.audio import opus


def ffmpeg_children() -> list[int]:
    """Live (not zombie) ffmpeg processes this process started."""
    me, found = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            name, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
            if "ffmpeg" in name and int(rest[1]) == me and rest[0] != "Z":
                found.append(int(stat.parent.name))
    return found


def live_decoders() -> int:
    """ffmpeg decoder processes plus in-process opus decoders still running."""
    return len(ffmpeg_children()) + opus.running()
