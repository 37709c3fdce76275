"""Browsers' opus (webm, ogg) decoded in-process: the same speech as ffmpeg hears, as bytes arrive,
whatever the container's layout; other codecs still decoded (by ffmpeg); bad bytes one error."""

from __future__ import annotations

import asyncio
import itertools
import subprocess

import numpy as np
import pytest

from flow.audio.decoder import FfmpegDecoder, OpusDecoder, make_decoder
from flow.audio.demux import DemuxError, OggDemuxer, WebmDemuxer
from flow.audio.ffmpeg import ffmpeg_path
from flow.contract.messages import AudioFormat
from flow.testing.speech import encode, speak_piper

SENTENCE = "The browser records opus, and every word of it must come through."


@pytest.fixture(scope="module")
def speech():
    return speak_piper(SENTENCE)


async def run(decoder_factory, data: bytes, slice_bytes: int) -> tuple[bytes, list[str], object]:
    out: list[bytes] = []
    errors: list[str] = []
    dec = decoder_factory(out.append, errors.append)
    for i in range(0, len(data), slice_bytes):
        dec.feed(data[i:i + slice_bytes])
        await asyncio.sleep(0)
    await dec.finish()
    await dec.aclose()
    return b"".join(out), errors, dec


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


@pytest.mark.parametrize("container", ["webm", "ogg"])
async def test_same_speech_as_ffmpeg_decodes(speech, container) -> None:
    data = encode(speech, container, pad_s=0.3, lead_s=0.2)
    ours, errors, dec = await run(lambda p, e: make_decoder(AudioFormat(container), 16000, p, e), data, 700)
    theirs, ff_errors, _ = await run(lambda p, e: FfmpegDecoder(container, 16000, p, e), data, 700)
    assert isinstance(dec, OpusDecoder) and dec._ffmpeg is None  # decoded in-process
    assert errors == [] and ff_errors == []
    # the same start (libavcodec drops the encoder delay, the OpusHead's pre-skip); ffmpeg also trims
    # the last frame's padding (the container's end marks), a few ms
    assert abs(len(ours) - len(theirs)) <= 640
    a, b = samples(ours), samples(theirs)
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    assert np.sqrt(np.mean(b ** 2)) > 300  # there is speech in it (not two silences agreeing)
    snr = 10 * np.log10(np.sum(b ** 2) / max(np.sum((a - b) ** 2), 1.0))
    assert snr > 20, f"in-process decode differs from ffmpeg's: SNR {snr:.1f} dB"


@pytest.mark.parametrize(("container", "codec"), [("webm", "libvorbis"), ("ogg", "libvorbis"), ("ogg", "flac")])
async def test_other_codecs_go_to_ffmpeg(speech, container, codec) -> None:
    cmd = [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-i", str(speech), "-ac", "1",
           "-c:a", codec, "-f", container, "pipe:1"]
    data = (await asyncio.to_thread(subprocess.run, cmd, capture_output=True, check=True)).stdout
    reference, _, _ = await run(lambda p, e: FfmpegDecoder(container, 16000, p, e), data, 1000)
    pcm, errors, dec = await run(lambda p, e: make_decoder(AudioFormat(container), 16000, p, e), data, 1000)
    assert errors == []
    assert isinstance(dec, OpusDecoder) and dec._ffmpeg is not None
    assert len(reference) > 16000 and abs(len(pcm) - len(reference)) <= 640


@pytest.mark.parametrize("container", ["webm", "ogg"])
async def test_garbage_is_one_error_and_no_process(container) -> None:
    pcm, errors, dec = await run(lambda p, e: make_decoder(AudioFormat(container), 16000, p, e),
                                 b"definitely not audio " * 200, 300)
    assert pcm == b"" and len(errors) == 1 and container.replace("webm", "WebM").replace("ogg", "Ogg") in errors[0]
    assert dec.dead and dec._ffmpeg is None


async def test_a_stream_broken_midway_keeps_what_came_before(speech) -> None:
    data = encode(speech, "ogg", pad_s=0.0, lead_s=0.0)
    half = len(data) // 2
    broken = data[:half] + b"\x00garbage that is no Ogg page" * 100
    pcm, errors, _ = await run(lambda p, e: make_decoder(AudioFormat("ogg"), 16000, p, e), broken, 500)
    assert len(errors) == 1 and "Ogg" in errors[0]
    assert len(pcm) > 16000  # the first half's speech was handed on before the break


async def test_aclose_stops_output_at_once(speech) -> None:
    data = encode(speech, "webm", pad_s=2.0)
    out: list[bytes] = []
    dec = make_decoder(AudioFormat("webm"), 16000, out.append, lambda e: None)
    for i in range(0, len(data), 200):
        dec.feed(data[i:i + 200])
    await dec.aclose()
    count = len(out)
    await asyncio.sleep(0.2)
    dec.feed(data[:100])
    await dec.finish()
    assert len(out) == count  # nothing after aclose, feeding and finishing a closed decoder is harmless


async def test_output_comes_in_pieces_of_at_most_100_ms(speech) -> None:
    data = encode(speech, "ogg", pad_s=0.0)
    out: list[bytes] = []
    dec = make_decoder(AudioFormat("ogg"), 16000, out.append, lambda e: None)
    dec.feed(data)  # the whole recording in one chunk
    await dec.finish()
    assert len(out) > 5 and max(map(len, out)) <= 3200


# --- the WebM layouts browsers write, built by hand around real opus packets ----------------------

def element(eid: int, body: bytes, unknown: bool = False) -> bytes:
    ident = eid.to_bytes((eid.bit_length() + 7) // 8, "big")
    if unknown:
        return ident + b"\x01\xff\xff\xff\xff\xff\xff\xff" + body
    return ident + (0x0100000000000000 | len(body)).to_bytes(8, "big") + body


def webm(head: bytes, blocks: list[bytes], unknown: bool = True, extra_track: bool = False) -> bytes:
    ebml = element(0x1A45DFA3, element(0x4282, b"webm"))
    tracks = b""
    if extra_track:  # a video track first, as a camera recording has
        tracks += element(0xAE, element(0xD7, b"\x01") + element(0x83, b"\x01") + element(0x86, b"V_VP8"))
    number = b"\x02" if extra_track else b"\x01"
    tracks += element(0xAE, element(0xD7, number) + element(0x83, b"\x02") + element(0x86, b"A_OPUS")
                      + element(0x63A2, head))
    cluster = element(0xE7, b"\x00")
    for block in blocks:
        cluster += element(0xA3, block)
        if extra_track:
            cluster += element(0xA3, b"\x81\x00\x00\x80" + b"video" * 50)
    segment = element(0xEC, b"\x00" * 40) + element(0x1654AE6B, tracks) + element(0x1F43B675, cluster, unknown)
    return ebml + element(0x18538067, segment, unknown)


def simple_block(track: int, frames: list[bytes], lacing: int) -> bytes:
    head = bytes([0x80 | track]) + b"\x00\x00" + bytes([0x80 | (lacing << 1)])
    if lacing == 0:
        return head + frames[0]
    body = bytes([len(frames) - 1])
    if lacing == 1:
        for f in frames[:-1]:
            body += b"\xff" * (len(f) // 255) + bytes([len(f) % 255])
    elif lacing == 3:
        body += (0x4000 | len(frames[0])).to_bytes(2, "big")
        for prev, cur in itertools.pairwise(frames[:-1]):
            body += (len(cur) - len(prev) + 8191 | 0x4000).to_bytes(2, "big")
    return head + body + b"".join(frames)


@pytest.fixture(scope="module")
def opus_packets(speech) -> tuple[bytes, list[bytes]]:
    demux = WebmDemuxer()
    packets = demux.push(encode(speech, "webm", pad_s=0.0, lead_s=0.0))
    assert demux.codec == "opus" and len(packets) > 50
    return demux.head, packets


@pytest.mark.parametrize("slice_bytes", [1, 37, 100_000])
@pytest.mark.parametrize("unknown", [True, False])
def test_webm_layouts_give_every_packet(opus_packets, slice_bytes, unknown) -> None:
    head, packets = opus_packets
    data = webm(head, [simple_block(2, [p], 0) for p in packets], unknown=unknown, extra_track=True)
    demux = WebmDemuxer()
    got = []
    for i in range(0, len(data), slice_bytes):
        got += demux.push(data[i:i + slice_bytes])
    assert demux.head == head and got == packets  # the video track's blocks are not audio


@pytest.mark.parametrize("lacing", [1, 2, 3])
def test_laced_blocks_are_split_into_their_frames(opus_packets, lacing) -> None:
    head, packets = opus_packets
    frames = packets[:4]
    if lacing == 2:  # fixed lacing needs equal sizes
        frames = [packets[0]] * 3
    data = webm(head, [simple_block(1, frames, lacing)])
    assert WebmDemuxer().push(data) == frames


async def test_a_hand_built_chrome_layout_decodes_like_ffmpeg(opus_packets) -> None:
    head, packets = opus_packets
    data = webm(head, [simple_block(1, [p], 0) for p in packets])  # unknown-size segment and cluster
    ours, errors, dec = await run(lambda p, e: make_decoder(AudioFormat("webm"), 16000, p, e), data, 512)
    theirs, ff_errors, _ = await run(lambda p, e: FfmpegDecoder("webm", 16000, p, e), data, 512)
    assert errors == ff_errors == [] and dec._ffmpeg is None
    assert len(theirs) > 32000 and abs(len(ours) - len(theirs)) <= 640


@pytest.mark.parametrize(("demuxer", "data", "words"), [
    (WebmDemuxer, b"\x1aE\xdf\xa3\x80" + b"\x00\x00\x00", "longer than 8"),
    (WebmDemuxer, b"\x1aE\xdf\xa3\x80" + b"\xa3\x01\xff\xff\xff\xff\xff\xff\xff", "unknown size"),
    (WebmDemuxer, b"\x1aE\xdf\xa3\x80" + b"\xa3\x08\x7f\xff\xff\xff", "bytes"),
    (OggDemuxer, b"OggS\x01" + b"\x00" * 30, "Ogg"),
])
def test_malformed_containers_raise(demuxer, data, words) -> None:
    with pytest.raises(DemuxError, match=words):
        demuxer().push(data)


@pytest.mark.parametrize("container", ["webm", "ogg"])
async def test_a_recording_stopped_before_any_audio_is_empty_not_an_error(speech, container) -> None:
    """Start and stop at once: the browser sent its header and no audio yet."""
    if container == "webm":
        data = webm(b"OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00", [])
        data = data[:data.index(b"\x1f\x43\xb6\x75")]  # up to the first Cluster: tracks only
    else:
        data = encode(speech, "ogg", pad_s=0.0)
        data = data[:data.index(b"OggS", 4)]  # the OpusHead page only
    pcm, errors, dec = await run(lambda p, e: make_decoder(AudioFormat(container), 16000, p, e), data, 50)
    assert (pcm, errors, dec._ffmpeg) == (b"", [], None)
    pcm, errors, _ = await run(lambda p, e: make_decoder(AudioFormat(container), 16000, p, e), data[:7], 50)
    assert pcm == b"" and len(errors) == 1 and "before its audio header" in errors[0]


async def test_many_recordings_share_the_decoding_thread_each_in_order(speech) -> None:
    data = encode(speech, "webm", pad_s=0.2)
    reference, _, _ = await run(lambda p, e: make_decoder(AudioFormat("webm"), 16000, p, e), data, 100_000)
    outs: list[list[bytes]] = [[] for _ in range(20)]
    decoders = [make_decoder(AudioFormat("webm"), 16000, out.append, pytest.fail) for out in outs]
    for i in range(0, len(data), 333):  # interleaved, as 20 sessions' chunks arrive
        for dec in decoders:
            dec.feed(data[i:i + 333])
        await asyncio.sleep(0)
    await asyncio.gather(*(dec.finish() for dec in decoders))
    assert all(b"".join(out) == reference for out in outs)


async def test_a_flooding_recording_does_not_hold_up_another(speech) -> None:
    """A recording with ~1 MB queued is decoded a slice at a time, in turn with the others: a short
    one fed after it is finished while most of the flood still waits."""
    data = encode(speech, "ogg", pad_s=0.0)
    flood = make_decoder(AudioFormat("ogg"), 16000, lambda pcm: None, pytest.fail)
    flood.feed(data)
    for _ in range(1_000_000 // len(data)):
        flood.feed(data[data.index(b"OggS", 200):])  # more pages of the same stream (no second header)
    short = make_decoder(AudioFormat("ogg"), 16000, lambda pcm: None, pytest.fail)
    short.feed(data)
    await short.finish()
    assert flood.pending_bytes > 500_000  # the flood's backlog was not decoded first
    await flood.aclose()


async def test_a_failing_consumer_ends_its_recording_only(speech) -> None:
    data = encode(speech, "ogg", pad_s=0.0)
    errors: list[str] = []

    def broken(pcm: bytes) -> None:
        raise RuntimeError("downstream bug")

    bad = make_decoder(AudioFormat("ogg"), 16000, broken, errors.append)
    out: list[bytes] = []
    good = make_decoder(AudioFormat("ogg"), 16000, out.append, pytest.fail)
    for dec in (bad, good):
        dec.feed(data)
    await asyncio.wait_for(asyncio.gather(bad.finish(), good.finish()), 10)  # neither hangs
    assert len(errors) == 1 and "downstream bug" in errors[0]
    assert len(b"".join(out)) > 32000


def _decode_in_child(data: bytes) -> int:
    async def go() -> int:
        out, _, _ = await run(lambda p, e: make_decoder(AudioFormat("ogg"), 16000, p, e), data, 4000)
        return len(out)

    return asyncio.run(go())


async def test_a_forked_child_decodes_with_a_thread_of_its_own(speech) -> None:
    import concurrent.futures
    import multiprocessing

    data = encode(speech, "ogg", pad_s=0.0)
    here, _, _ = await run(lambda p, e: make_decoder(AudioFormat("ogg"), 16000, p, e), data, 4000)  # thread up
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        there = await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(pool, _decode_in_child, data), 30)
    assert there == len(here) > 32000  # (without the at-fork reset the child waited for a thread it lacks)
