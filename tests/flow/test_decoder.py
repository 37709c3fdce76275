"""Incremental decoding of real encoded speech, fed in arbitrary byte slices."""

from __future__ import annotations

import asyncio
import wave

import pytest

from flow.audio.decoder import FfmpegDecoder, make_decoder
from flow.contract.messages import AudioFormat
from flow.testing.decoders import ffmpeg_children
from flow.testing.speech import encode, speak_piper

SENTENCE = "Decoding must not lose a single word."


@pytest.fixture(scope="module")
def speech():
    path = speak_piper(SENTENCE)
    with wave.open(str(path)) as w:
        return path, w.getnframes() / w.getframerate()


async def decode(fmt: AudioFormat, data: bytes, slice_bytes: int,
                 pace_s: float = 0.0) -> tuple[bytes, list[str], list[int]]:
    out: list[bytes] = []
    errors: list[str] = []
    sizes_at_first_output: list[int] = []
    fed = 0

    def on_pcm(pcm: bytes) -> None:
        if not out:
            sizes_at_first_output.append(fed)
        out.append(pcm)

    dec = make_decoder(fmt, 16000, on_pcm, errors.append)
    for i in range(0, len(data), slice_bytes):
        dec.feed(data[i:i + slice_bytes])
        fed = i + slice_bytes
        await asyncio.sleep(pace_s)
    await dec.finish()
    await dec.aclose()
    return b"".join(out), errors, sizes_at_first_output


@pytest.mark.parametrize(("container", "fmt", "slice_bytes"), [
    ("webm", AudioFormat("webm"), 997),
    ("webm", AudioFormat("webm"), 1),
    ("ogg", AudioFormat("ogg"), 1500),
    ("wav", AudioFormat("wav"), 3333),
    ("mp3", AudioFormat("mp3"), 777),
    ("pcm16_16k", AudioFormat("pcm16", 16000), 333),
    ("pcm16_48k", AudioFormat("pcm16", 48000), 1001),
])
async def test_decoded_duration_matches(speech, container, fmt, slice_bytes) -> None:
    path, seconds = speech
    data = encode(path, container, pad_s=0.5, lead_s=0.0)
    if slice_bytes == 1:
        data = data[:6000]  # one byte at a time: the header parser must cope; keep it short
        seconds = None
    pcm, errors, _ = await decode(fmt, data, slice_bytes)
    assert errors == []
    assert len(pcm) % 2 == 0
    if seconds is not None:
        # mp3 adds encoder padding (~50 ms); opus a little pre-skip
        assert abs(len(pcm) / 32000 - (seconds + 0.5)) < 0.08
    else:
        assert len(pcm) > 0


async def test_output_starts_before_the_input_ends(speech) -> None:
    path, _ = speech
    data = encode(path, "webm", pad_s=4.0)
    # chunks arrive as a client sends them, spread over time (not a timing assertion: only order)
    _, errors, fed_at_first = await decode(AudioFormat("webm"), data, 500, pace_s=0.05)
    assert errors == [] and fed_at_first and fed_at_first[0] < len(data)


async def test_garbage_is_reported_once_and_process_ends() -> None:
    errors: list[str] = []
    dec = FfmpegDecoder("webm", 16000, lambda pcm: None, errors.append)
    for _ in range(20):
        dec.feed(b"definitely not a webm stream " * 50)
    await dec.finish()
    assert len(errors) == 1 and errors[0]
    dec.feed(b"more")  # ignored once dead
    await dec.aclose()
    assert dec._proc is not None and dec._proc.returncode is not None


async def test_aclose_kills_running_decoders() -> None:
    data = encode(speak_piper(SENTENCE), "ogg")[:2000]
    decoders = [FfmpegDecoder("ogg", 16000, lambda pcm: None, lambda e: None) for _ in range(8)]
    for d in decoders:
        d.feed(data)
    # every ffmpeg is running before the close (a loaded CI machine took over 0.3 s to start 8)
    for _ in range(200):
        if all(d._proc is not None for d in decoders):
            break
        await asyncio.sleep(0.05)
    assert all(d._proc is not None for d in decoders)
    await asyncio.gather(*(d.aclose() for d in decoders))
    assert all(d._proc is not None and d._proc.returncode is not None for d in decoders)
    assert ffmpeg_children() == []


async def test_aclose_while_ffmpeg_is_starting_leaves_no_process() -> None:
    decoders = [FfmpegDecoder("ogg", 16000, lambda pcm: None, lambda e: None) for _ in range(8)]
    await asyncio.sleep(0)  # the start is under way, not finished
    await asyncio.gather(*(d.aclose() for d in decoders))
    assert ffmpeg_children() == []
