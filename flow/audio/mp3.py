"""MP3 duration from the first frame header, without decoding: enough to know how long a reply speaks.

Our encoders (ffmpeg, the providers' TTS) write constant bit rate files, so the size and the first
frame's bit rate give the playing time.
"""

from __future__ import annotations

import base64

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
