"""MP3: encoding the offline voice's PCM, and a reply's duration from its first frame header.

Encoding is libmp3lame inside the process (PyAV): an ffmpeg process per sentence cost ~80 ms of
wall time for 3 s of speech, in-process ~20 ms. Our encoder and the providers' TTS write constant
bit rate files, so the size and the first frame's bit rate give the playing time, without decoding.
"""

from __future__ import annotations

import base64
import io

import av
import numpy as np

from flow.contract.cpu_pool import CancelToken

ENCODE_SLICE_S = 0.5
"""PCM encoded between two looks at the cancel token (a few ms of CPU)."""


def encode_mp3_sync(pcm: bytes, rate: int, width: int = 2, channels: int = 1, bitrate: str = "64k",
                    cancel: CancelToken | None = None) -> bytes:
    """Blocking PCM16 → constant bit rate MP3 (for worker threads). Once `cancel` is set it stops
    between slices and raises `asyncio.CancelledError`."""
    if width != 2:
        raise ValueError("MP3 encoding takes 16-bit PCM")
    cancel = cancel or CancelToken()
    cancel.raise_if_cancelled()
    samples = np.frombuffer(pcm, dtype="<i2")
    samples = samples[:len(samples) - len(samples) % channels].reshape(-1, channels)
    layout = "mono" if channels == 1 else "stereo"
    out = io.BytesIO()
    # no Xing/Info frame: it is written only to a seekable file (the ffmpeg pipe never had one)
    # and would count as one more frame of playing time in `mp3_seconds`
    with av.open(out, "w", format="mp3", options={"write_xing": "0"}) as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout=layout)
        stream.bit_rate = int(bitrate.rstrip("k")) * 1000
        step = max(1, int(rate * ENCODE_SLICE_S))
        for start in range(0, len(samples), step):
            cancel.raise_if_cancelled()
            frame = av.AudioFrame.from_ndarray(samples[start:start + step].reshape(1, -1),
                                               format="s16", layout=layout)
            frame.sample_rate = rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    cancel.raise_if_cancelled()
    return out.getvalue()

_KBPS_V1_L3 = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_KBPS_V2_L3 = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)


def mp3_seconds(head: bytes, total_bytes: int) -> float:
    """Duration from the first frame header's bit rate, 0 if `head` is not the start of an MP3.

    `head` is the start of the file (an ID3v2 tag, then the first frame), `total_bytes` its size.
    """
    offset = 0
    if head[:3] == b"ID3" and len(head) >= 10:
        size = head[6:10]
        offset = 10 + (size[0] << 21 | size[1] << 14 | size[2] << 7 | size[3])
    header = head[offset:offset + 4]
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return 0.0
    table = _KBPS_V1_L3 if (header[1] >> 3) & 0x3 == 3 else _KBPS_V2_L3
    index = header[2] >> 4
    if not 0 < index < 15:
        return 0.0
    return (total_bytes - offset) * 8 / (table[index] * 1000)


def b64_size(audio_b64: str) -> int:
    """How many bytes a base64 string decodes to (without decoding it)."""
    return len(audio_b64) * 3 // 4 - (2 if audio_b64.endswith("==") else 1 if audio_b64.endswith("=") else 0)


def mp3_seconds_b64(audio_b64: str | None) -> float:
    """Playing time of a base64 MP3, 0 if unknown (decodes only the first few kilobytes)."""
    if not audio_b64:
        return 0.0
    try:
        head = base64.b64decode(audio_b64[:4096])
    except ValueError:  # binascii.Error included
        return 0.0
    return mp3_seconds(head, b64_size(audio_b64))
