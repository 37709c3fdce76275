"""Finding ffmpeg (system first, else the binary shipped in the `imageio-ffmpeg` wheel) and decoding
whole uploads with it.

A pip-only machine has no ffmpeg on PATH; `imageio-ffmpeg` ships
ffmpeg (but no ffprobe), so nothing here relies on ffprobe.
"""

from __future__ import annotations

import asyncio
import functools
import shutil


@functools.cache
def ffmpeg_path() -> str:
    """The ffmpeg executable: a system one on PATH, else imageio-ffmpeg's; RuntimeError if none."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as err:
        raise RuntimeError(
            "ffmpeg not found: install it (apt-get install ffmpeg) or pip install imageio-ffmpeg"
        ) from err


def _last_line(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "no output"


async def decode_to_pcm16(data: bytes, rate: int = 16_000, max_seconds: float = 120.0) -> bytes:
    """Any audio file ffmpeg reads (wav, mp3, webm, ogg, …) → mono PCM16 at `rate`.

    The work happens in the ffmpeg process; the loop only moves bytes. Raises ValueError with
    ffmpeg's own complaint for something that is not audio.
    """
    proc = await asyncio.create_subprocess_exec(
        ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-i", "pipe:0", "-t", str(max_seconds),
        "-vn", "-f", "s16le", "-ac", "1", "-ar", str(rate), "pipe:1",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(data)
    if proc.returncode != 0 or not out:
        raise ValueError(f"not audio ffmpeg can read: {_last_line(err)}")
    return out
