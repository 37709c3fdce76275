"""Opus recordings (webm/ogg, what browsers send) decoded inside the process, off the event loop.

One ffmpeg process per recording cost, per real-time session, ~1 % of a core in ffmpeg, a pipe
round trip per chunk on the loop and ~4.5 MB of private memory, plus a process start per turn.
Here the container is read by `flow.audio.demux` and the packets go to libopus through PyAV
(libavcodec in the wheel, no system ffmpeg needed): ~26 µs of CPU per 20 ms packet, resampled.

All of it runs on one decoding thread shared by every recording in the process, never on the
loop, and the hand-offs are batched: a chunk arriving only appends to its recording's input and,
if the recording was idle, puts it in the thread's ready queue; the thread takes one slice of at
most `SLICE_BYTES` from each ready recording in turn (a session flooding audio waits behind the
others' chunks, not in front of them) and hands the PCM back to the loop in one callback per
pass. A thread hop per chunk (an executor future each) cost more CPU than decoding and made 100
real-time sessions wait for the queue of hops: stop-recording → end of decoding p50 52, p90
162 ms. A stream whose audio is not opus goes to ffmpeg (`FfmpegDecoder`) with every byte so far.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass

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
"""Most input one step decodes (~4 s of browser opus at 32 kbit/s; ~50 ms of CPU at the worst)."""
GATHER_S = 0.01
"""How long the woken thread lets chunks gather before a pass (a `finish` cuts it short): at 100
real-time sessions, ~100 passes a second instead of one thread and one loop wake-up per chunk."""
DELIVER_EVERY = 32
"""Steps after which the thread hands results to the loop even if its pass is not over (also after
`DELIVER_AFTER_S`, and at once for a finished or failed recording: someone waits for those)."""
DELIVER_AFTER_S = 0.005

_running: set[OpusDecoder] = set()


def running() -> int:
    """In-process decoders of this process not yet finished or closed (a closed session leaves none)."""
    return len(_running)


@dataclass(slots=True)
class _Step:
    """What one step on the decoding thread produced, for the loop."""

    decoder: OpusDecoder
    pcm: bytes = b""
    taken: int = 0
    """Input bytes the step consumed (no longer pending)."""
    error: str | None = None
    flushed: bool = False
    """The stream is over and every sample is out."""
    other_codec: str | None = None
    """The audio is not opus: ffmpeg takes the stream."""


class _DecodeThread:
    """The one thread that decodes every in-process recording (see the module doc)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ready: deque[OpusDecoder] = deque()
        self.wake = threading.Event()
        self.hurry = threading.Event()
        """Set when a recording waits to be finished: the pass starts at once."""
        threading.Thread(target=self._main, name="opus-decode", daemon=True).start()

    def schedule(self, decoder: OpusDecoder, hurry: bool = False) -> None:
        """`decoder` has work (loop thread): into the ready queue unless it is already there;
        `hurry`: someone waits for it (a turn ends), no gathering."""
        if hurry:
            self.hurry.set()
        with self.lock:
            if decoder.scheduled:
                return
            decoder.scheduled = True
            self.ready.append(decoder)
        self.wake.set()

    def _main(self) -> None:
        while True:
            try:
                self._pass()
            except Exception:  # a bug here must not stop every session's decoding for good
                log.exception("decoding thread: a pass failed")

    def _pass(self) -> None:
        """Wait for work, then one pass over the ready recordings."""
        self.wake.wait()
        self.hurry.wait(GATHER_S)
        self.hurry.clear()
        self.wake.clear()
        done: list[_Step] = []
        since = 0.0
        while True:
            with self.lock:
                if not self.ready:
                    break
                decoder = self.ready.popleft()
            st = decoder.step()
            if not done:
                since = time.monotonic()
            done.append(st)
            with self.lock:
                if decoder.has_work():
                    self.ready.append(decoder)
                else:
                    decoder.scheduled = False
            if (st.flushed or st.error is not None or len(done) >= DELIVER_EVERY
                    or time.monotonic() - since > DELIVER_AFTER_S):
                _deliver_all(done)
                done = []
        if done:
            _deliver_all(done)


def _deliver_all(steps: list[_Step]) -> None:
    """Hand `steps` to their loops, one callback per loop (decoding thread)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Step]] = {}
    for st in steps:
        by_loop.setdefault(st.decoder.loop, []).append(st)
    for loop, mine in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits for these
            loop.call_soon_threadsafe(_delivered, mine)


def _delivered(steps: list[_Step]) -> None:
    for st in steps:
        try:
            st.decoder.delivered(st)
        except Exception as err:  # what the PCM went to failed: that recording ends, the others go on
            log.exception("decoder: handing on decoded audio failed")
            st.decoder.fail(f"{type(err).__name__}: {err}")


_thread: _DecodeThread | None = None
_thread_lock = threading.Lock()


def _decode_thread() -> _DecodeThread:
    global _thread
    with _thread_lock:
        if _thread is None:
            _thread = _DecodeThread()
        return _thread


def _forget_thread() -> None:
    """In a forked child the thread does not exist: the next recording starts its own."""
    global _thread, _thread_lock
    _thread, _thread_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_thread)


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
    """A webm/ogg recording, demuxed and decoded on the shared decoding thread as chunks arrive.

    The loop thread feeds `input` and reads results in `delivered`; the decoding thread owns the
    demuxer and the codec and runs `step`. `scheduled` is guarded by the thread's lock."""

    def __init__(self, container: str, demuxer: Demuxer, target_rate: int, on_pcm: OnPcm,
                 on_error: OnError) -> None:
        self.container = container
        self.target_rate = target_rate
        self.loop = asyncio.get_running_loop()
        self._demuxer = demuxer
        self._on_pcm = on_pcm
        self._on_error = on_error
        self.input: deque[bytes] = deque()
        self.pending_bytes = 0
        self.scheduled = False
        self.dead = False
        """Closed or failed (loop thread sets it; the decoding thread then skips this one)."""
        self._flush = False
        """No more input: flush once it is all decoded (loop thread sets it)."""
        self._stopped = False
        """Decoding thread: flushed, failed or handed to ffmpeg; no more steps."""
        self._seen: list[bytes] | None = []
        """Decoding thread: every byte until the codec is known (replayed to ffmpeg if not opus)."""
        self._seen_bytes = 0
        self._codec: _Codec | None = None
        self._ffmpeg: FfmpegDecoder | None = None
        self._done = self.loop.create_future()
        """Resolved once every sample is out, the stream failed, or the decoder was closed."""
        self._thread = _decode_thread()
        """Looked up once per recording, not per chunk (the lookup takes a lock)."""
        _running.add(self)
        self._done.add_done_callback(lambda _: _running.discard(self))

    # ---------------------------------------------------------------- loop thread

    def feed(self, data: bytes) -> None:
        if self.dead or self._flush:
            return
        if self._ffmpeg is not None:
            self._ffmpeg.feed(data)
            return
        self.input.append(data)
        self.pending_bytes += len(data)
        self._thread.schedule(self)  # (checks `scheduled` under the lock: no lost wake-up)

    async def finish(self) -> None:
        """No more input: wait until every sample is out (or the stream failed)."""
        if not self._flush and not self.dead and self._ffmpeg is None:
            self._flush = True
            self._thread.schedule(self, hurry=True)
        await asyncio.shield(self._done)
        if self._ffmpeg is not None:
            await self._ffmpeg.finish()

    async def aclose(self) -> None:
        """Abort: drop what is queued; a step already on the decoding thread ends by itself (it is
        at most `SLICE_BYTES`) and its result is dropped. Idempotent, never raises."""
        self.dead = True
        self.input.clear()
        self.pending_bytes = 0
        self._resolve()
        if self._ffmpeg is not None:
            await self._ffmpeg.aclose()

    def delivered(self, st: _Step) -> None:
        """A step's result, in step order."""
        self.pending_bytes = max(0, self.pending_bytes - st.taken)
        if self.dead:
            return
        self._hand_on(st.pcm)
        if st.error is not None:
            self.fail(st.error)
        elif st.other_codec is not None:
            self._to_ffmpeg(st.other_codec)
        elif st.flushed:
            self._resolve()

    def _to_ffmpeg(self, codec: str) -> None:
        """The audio is not opus: replay every byte to an ffmpeg decoder, which takes it from here."""
        log.info("%s audio in %s: decoding it with ffmpeg", codec, self.container)
        seen, self._seen = self._seen or [], None
        self._ffmpeg = FfmpegDecoder(self.container, self.target_rate, self._on_pcm, self._on_error)
        for data in (*seen, *self.input):
            self._ffmpeg.feed(data)
        self.input.clear()
        self.pending_bytes = 0
        self._resolve()  # a finish() waiting goes on to wait for ffmpeg

    def _hand_on(self, pcm: bytes) -> None:
        if pcm:
            for piece in pieces(pcm):
                self._on_pcm(piece)

    def fail(self, message: str) -> None:
        if not self.dead:
            self.dead = True
            self.input.clear()
            self.pending_bytes = 0
            self._resolve()
            self._on_error(message)

    def _resolve(self) -> None:
        if not self._done.done():
            self._done.set_result(None)

    # ---------------------------------------------------------------- decoding thread

    def has_work(self) -> bool:
        return not self._stopped and not self.dead and (bool(self.input) or self._flush)

    def step(self) -> _Step:
        """One slice of input decoded, or (input all done and finish called) the flush."""
        st = _Step(self)
        if self.dead or self._stopped:
            return st
        try:
            if self.input:
                data = self._take()
                st.taken = len(data)
                st.pcm = self._decode(data)
                codec = self._demuxer.codec
                if codec is not None and codec != "opus":
                    st.other_codec, self._stopped = codec, True
            elif self._flush:
                self._stopped = True
                self._demuxer.end()  # a break after the last packets raises here
                codec = self._demuxer.codec
                if self._codec is not None:
                    st.pcm = self._codec.decode(None)
                elif codec is not None and codec != "opus":
                    st.other_codec = codec
                elif codec is None and self._seen_bytes:
                    raise DemuxError(f"the {self.container} stream ended before its audio header")
                st.flushed = True
        except DemuxError as err:
            st.error, self._stopped = str(err), True
        except av.error.FFmpegError as err:
            st.error, self._stopped = f"opus: {err}", True
        except Exception as err:
            log.exception("decoder failed")
            st.error, self._stopped = f"{type(err).__name__}: {err}", True
        if self._stopped:
            # libopus and the resampler's filter graph are freed here, on this thread, as the
            # recording ends, rather than wherever the decoder object is collected
            self._codec = None
        return st

    def _take(self) -> bytes:
        """Up to `SLICE_BYTES` of the queued input, joined (a chunk larger than that is split)."""
        parts: list[bytes] = []
        size = 0
        while self.input and size < SLICE_BYTES:
            data = self.input.popleft()
            if size + len(data) > SLICE_BYTES:
                keep = SLICE_BYTES - size
                self.input.appendleft(data[keep:])
                data = data[:keep]
            parts.append(data)
            size += len(data)
        return b"".join(parts)

    def _decode(self, data: bytes) -> bytes:
        """Demux `data`, decode its packets (remembering the bytes until the codec is known)."""
        if self._seen is not None:
            self._seen.append(data)
            self._seen_bytes += len(data)
        packets = self._demuxer.push(data)
        codec = self._demuxer.codec
        if codec is None:
            if self._seen_bytes > HEADER_LIMIT:
                raise DemuxError(f"no audio header in the first {HEADER_LIMIT} bytes")
            return b""
        if codec != "opus":
            return b""
        self._seen = None
        if self._codec is None:
            self._codec = _Codec(self._demuxer.head, self.target_rate)
        return self._codec.decode(packets) if packets else b""
