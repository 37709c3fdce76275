"""Opus recordings (webm/ogg, what browsers send) decoded inside the process, off the event loop.

One ffmpeg process per recording cost, per real-time session, ~1 % of a core in ffmpeg, a pipe
round trip per chunk on the loop and ~4.5 MB of private memory, plus a process start per turn;
at 50 webm sessions their CPU and wake-ups made turn p90 ~340 ms where PCM16 sessions had 20.
Here the container is read by `flow.audio.demux` and the packets go to libopus through PyAV
(libavcodec in the wheel, no system ffmpeg needed): ~25 µs of CPU per 20 ms packet.

The work runs on one shared decoding thread, never on the loop. Each recording has at most one
job in flight, of at most `SLICE_BYTES` of input, so a session flooding audio waits behind the
others' chunks instead of in front of them. A stream whose audio is not opus goes to ffmpeg
(`FfmpegDecoder`) with every byte it had so far.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
from collections import deque

import av

from flow.audio.demux import Demuxer, DemuxError
from flow.audio.ffmpeg_decoder import FfmpegDecoder
from flow.audio.stream_decoder import OnError, OnPcm, StreamDecoder, pieces

log = logging.getLogger("voicegraph.decoder")

HEADER_LIMIT = 1 << 20
"""Most bytes held while waiting for the audio header (a browser's header is in its first slice)."""
BAD_PACKETS = 10
"""Damaged packets in a row before the stream counts as not opus at all (one is skipped)."""
SLICE_BYTES = 16_384
"""Most input one job decodes (~4 s of browser opus at 32 kbit/s; ~50 ms of CPU at the worst)."""


_running: set[OpusDecoder] = set()


def running() -> int:
    """In-process decoders of this process still running (a closed session leaves none)."""
    return len(_running)


@functools.cache
def _executor() -> concurrent.futures.ThreadPoolExecutor:
    """The decoding thread every opus recording in the process shares (the work is small and the
    GIL would serialise more threads anyway; one thread keeps the jobs in arrival order)."""
    return concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="opus-decode")


class _Codec:
    """libopus and the resampler of one recording; only ever touched by the decoding thread."""

    def __init__(self, head: bytes, target_rate: int) -> None:
        if len(head) < 19 or not head.startswith(b"OpusHead"):
            raise DemuxError("opus stream without a valid OpusHead")
        self.ctx = av.CodecContext.create("opus", "r")
        self.ctx.extradata = head
        self.resampler = av.AudioResampler(format="s16", layout="mono", rate=target_rate)
        self.bad_in_row = 0

    def decode(self, packets: list[bytes] | None) -> bytes:
        """PCM for `packets` (None: flush what the decoder and resampler still hold)."""
        frames = []
        if packets is None:
            with contextlib.suppress(av.error.EOFError):
                frames.extend(self.ctx.decode(None))
            frames.append(None)
        else:
            for packet in packets:
                try:
                    frames.extend(self.ctx.decode(av.Packet(packet)))
                except av.error.InvalidDataError as err:  # one damaged packet: skip it, as ffmpeg does
                    self.bad_in_row += 1
                    if self.bad_in_row >= BAD_PACKETS:
                        raise DemuxError(f"{BAD_PACKETS} opus packets in a row undecodable ({err})") from err
                else:
                    self.bad_in_row = 0
        out = bytearray()
        for frame in frames:
            for pcm in self.resampler.resample(frame):
                out += bytes(pcm.planes[0])[:pcm.samples * 2]
        return bytes(out)


class OpusDecoder(StreamDecoder):
    """A webm/ogg recording: demuxed and decoded on the shared decoding thread as chunks arrive."""

    def __init__(self, container: str, demuxer: Demuxer, target_rate: int, on_pcm: OnPcm,
                 on_error: OnError) -> None:
        self.container = container
        self.target_rate = target_rate
        self._demuxer = demuxer
        self._on_pcm = on_pcm
        self._on_error = on_error
        self._queue: deque[bytes] = deque()
        self.pending_bytes = 0
        self._seen: list[bytes] | None = []
        """Every byte until the codec is known (a non-opus stream is replayed to ffmpeg)."""
        self._codec: _Codec | None = None
        self._ffmpeg: FfmpegDecoder | None = None
        self._eof = False
        self.dead = False
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"opus-{container}")
        _running.add(self)
        self._task.add_done_callback(lambda _: _running.discard(self))

    def feed(self, data: bytes) -> None:
        if self.dead or self._eof:
            return
        if self._ffmpeg is not None:
            self._ffmpeg.feed(data)
            return
        self._queue.append(data)
        self.pending_bytes += len(data)
        self._wakeup.set()

    async def finish(self) -> None:
        """No more input: wait until every sample is out (or the stream failed)."""
        self._eof = True
        self._wakeup.set()
        try:
            await asyncio.shield(self._task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._task.cancelled() and not (current and current.cancelling()):
                return  # aborted (`aclose`): nothing left to flush
            raise
        if self._ffmpeg is not None:
            await self._ffmpeg.finish()

    async def aclose(self) -> None:
        """Abort: drop what is queued; a job already on the decoding thread ends by itself (it is
        at most `SLICE_BYTES`). Idempotent, never raises."""
        self.dead = True
        self._eof = True
        self._queue.clear()
        self.pending_bytes = 0
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._ffmpeg is not None:
            await self._ffmpeg.aclose()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self._queue:
                    if self._eof:
                        break
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                data = self._take()
                if self._seen is not None:
                    self._seen.append(data)
                    if sum(map(len, self._seen)) > HEADER_LIMIT:
                        raise DemuxError(f"no audio header in the first {HEADER_LIMIT} bytes")
                pcm = await loop.run_in_executor(_executor(), self._decode, data)
                if self._ffmpeg_needed():
                    return
                self._hand_on(pcm)
            self._demuxer.end()  # a break after the last packets; (no job of ours is in flight)
            if self._codec is not None:
                self._hand_on(await loop.run_in_executor(_executor(), self._codec.decode, None))
                return
            if not self._ffmpeg_needed() and self._demuxer.codec is None and self._seen and not self.dead:
                self._fail(f"the {self.container} stream ended before its audio header")
        except DemuxError as err:
            self._fail(str(err))
        except av.error.FFmpegError as err:
            self._fail(f"opus: {err}")
        except Exception as err:
            log.exception("decoder failed")
            self._fail(f"{type(err).__name__}: {err}")

    def _take(self) -> bytes:
        """Up to `SLICE_BYTES` of the queued input, joined (a chunk larger than that is split)."""
        parts: list[bytes] = []
        size = 0
        while self._queue and size < SLICE_BYTES:
            data = self._queue.popleft()
            if size + len(data) > SLICE_BYTES:
                keep = SLICE_BYTES - size
                self._queue.appendleft(data[keep:])
                data = data[:keep]
            parts.append(data)
            size += len(data)
        self.pending_bytes -= size
        return b"".join(parts)

    def _decode(self, data: bytes) -> bytes:
        """On the decoding thread: demux `data`, decode its packets."""
        if self.dead:
            return b""
        packets = self._demuxer.push(data)
        if self._demuxer.codec != "opus":
            return b""  # not known yet, or not opus (then ffmpeg takes the stream)
        if self._codec is None:
            self._codec = _Codec(self._demuxer.head, self.target_rate)
        return self._codec.decode(packets) if packets else b""

    def _ffmpeg_needed(self) -> bool:
        """Once the codec is known: forget the replay buffer, or hand everything to ffmpeg."""
        codec = self._demuxer.codec
        if codec is None or self._seen is None or self.dead:
            return self.dead
        seen, self._seen = self._seen, None
        if codec == "opus":
            return False
        log.info("%s audio in %s: decoding it with ffmpeg", codec, self.container)
        self._ffmpeg = FfmpegDecoder(self.container, self.target_rate, self._on_pcm, self._on_error)
        for data in (*seen, *self._queue):
            self._ffmpeg.feed(data)
        self._queue.clear()
        self.pending_bytes = 0
        return True

    def _hand_on(self, pcm: bytes) -> None:
        if pcm and not self.dead:
            for piece in pieces(pcm):
                self._on_pcm(piece)

    def _fail(self, message: str) -> None:
        if not self.dead:
            self.dead = True
            self._queue.clear()
            self.pending_bytes = 0
            self._on_error(message)
