"""What every recording decoder is: bytes fed as they arrive, PCM handed on in small pieces."""

from __future__ import annotations

from collections.abc import Callable, Iterator

OnPcm = Callable[[bytes], None]
OnError = Callable[[str], None]

READ_BYTES = 3_200
"""Largest PCM piece handed on at once: 100 ms at 16 kHz mono (the turn detectors see audio at
least this finely, however much was decoded at once)."""


class StreamDecoder:
    """Interface of a recording's decoder: `feed` bytes, `finish` to flush, `aclose` to abort."""

    pending_bytes = 0
    """Bytes fed but not yet handed to the decoder (the node bounds this)."""

    def feed(self, data: bytes) -> None:
        raise NotImplementedError

    async def finish(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError


def pieces(pcm: bytes) -> Iterator[bytes]:
    """`pcm` in pieces of at most `READ_BYTES`."""
    for start in range(0, len(pcm), READ_BYTES):
        yield pcm[start:start + READ_BYTES]
