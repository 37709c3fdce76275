"""A recording decoded by its own ffmpeg process: the containers and codecs read in-process does not.

Bytes are written to ffmpeg's stdin by a writer task and PCM is read from its stdout by a reader
task, so the event loop never blocks and decoding happens in another process. Browsers' opus
(webm/ogg) is decoded in-process (`flow.audio.opus`); wav and mp3 uploads, and webm/ogg whose
audio is not opus, come here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from flow.audio.ffmpeg import ffmpeg_path
from flow.audio.stream_decoder import READ_BYTES, OnError, OnPcm, StreamDecoder

log = logging.getLogger("voicegraph.decoder")

_DEMUXER = {"webm": "matroska", "ogg": "ogg", "wav": "wav", "mp3": "mp3"}


class FfmpegDecoder(StreamDecoder):
    """A container stream decoded by an ffmpeg subprocess, fed and read without blocking."""

    def __init__(self, container: str, target_rate: int, on_pcm: OnPcm, on_error: OnError) -> None:
        self.container = container
        self.target_rate = target_rate
        self._on_pcm = on_pcm
        self._on_error = on_error
        self._queue: deque[bytes] = deque()
        self._wakeup = asyncio.Event()
        self._eof = False
        self.dead = False
        self.pending_bytes = 0
        self._stderr = b""
        self._proc: asyncio.subprocess.Process | None = None
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"ffmpeg-{container}")

    def feed(self, data: bytes) -> None:
        if self.dead or self._eof:
            return
        self._queue.append(data)
        self.pending_bytes += len(data)
        self._wakeup.set()

    async def finish(self) -> None:
        """No more input: wait until ffmpeg has flushed every sample (or failed)."""
        self._eof = True
        self._wakeup.set()
        try:
            await asyncio.shield(self._task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._task.cancelled() and not (current and current.cancelling()):
                return  # the decoder was aborted (`aclose`): there is nothing left to flush
            raise  # we are cancelled ourselves: never swallow it

    async def aclose(self) -> None:
        """Abort: kill ffmpeg, stop the tasks. Idempotent, never raises."""
        self.dead = True
        self._eof = True
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._kill()

    async def _kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(Exception):
                await proc.wait()

    def _args(self) -> list[str]:
        return [
            ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-nostdin",
            "-probesize", "32768", "-analyzeduration", "0",
            "-f", _DEMUXER[self.container], "-i", "pipe:0",
            "-vn", "-ac", "1", "-ar", str(self.target_rate), "-f", "s16le",
            "-flush_packets", "1", "pipe:1",
        ]

    async def _run(self) -> None:
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self._args(), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            writer = asyncio.ensure_future(self._write())
            errors = asyncio.ensure_future(self._read_stderr())
            try:
                await self._read()
                await self._proc.wait()
            except BaseException:
                # cancelled (the session closed) or failed: ffmpeg may be blocked writing output
                # that nobody reads any more, and would then never close stderr — kill it first
                await self._kill()
                raise
            finally:
                writer.cancel()
                await asyncio.gather(writer, errors, return_exceptions=True)
            if self._proc.returncode != 0 and not self.dead:
                self._fail(_reason(self._stderr, self._proc.returncode))
        except asyncio.CancelledError:
            await self._kill()
            raise
        except Exception as err:
            log.exception("decoder failed")
            await self._kill()
            self._fail(f"{type(err).__name__}: {err}")

    async def _write(self) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        stdin = self._proc.stdin
        try:
            while True:
                while self._queue:
                    data = self._queue.popleft()
                    self.pending_bytes -= len(data)
                    stdin.write(data)
                    await stdin.drain()
                if self._eof:
                    break
                self._wakeup.clear()
                await self._wakeup.wait()
        except (BrokenPipeError, ConnectionResetError):
            pass  # ffmpeg quit (bad input): its exit status tells why
        finally:
            with contextlib.suppress(Exception):
                stdin.close()

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        rest = b""
        while True:
            data = await self._proc.stdout.read(READ_BYTES)
            if not data:
                break
            data = rest + data
            usable = len(data) - len(data) % 2
            data, rest = data[:usable], data[usable:]
            if data and not self.dead:
                self._on_pcm(data)

    async def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        while chunk := await self._proc.stderr.read(4096):
            self._stderr = (self._stderr + chunk)[-2000:]

    def _fail(self, message: str) -> None:
        if not self.dead:
            self.dead = True
            self._queue.clear()
            self.pending_bytes = 0
            self._on_error(message)


def _reason(stderr: bytes, code: int | None) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    last = lines[-1] if lines else f"ffmpeg exited with status {code}"
    return last.replace("pipe:0: ", "")[:200]


def _reason(stderr: bytes, code: int | None) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    last = lines[-1] if lines else f"ffmpeg exited with status {code}"
    return last.replace("pipe:0: ", "")[:200]
