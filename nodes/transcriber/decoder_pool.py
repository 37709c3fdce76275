"""PocketSphinx decoders in worker processes, checked out one per call by CPU-pool threads.

The `pocketsphinx` binding holds the GIL for the whole of `process_raw` and `end_utt` (its Cython
has no `nogil`): decoding in a thread would still freeze the event loop for ~0.2 s per second of
speech and let no two decodes run at once. So each decoder lives in a small worker process of its
own, speaking length-prefixed PCM in, text out over its stdin/stdout. A thread of the shared CPU
pool checks one worker out per call and waits on the pipe (GIL released); the pool keeps at
most one worker per CPU worker, started on first need, so twenty sessions finishing at once
neither block the loop nor start twenty decoders (each takes ~0.7 s to build and ~90 MB of
memory, in a thread as in a process, which adds only ~15 MB).

Nothing can be shared between decoders anyway: the C library gives each its own acoustic model
and dictionary, and its language-model trie caches the last lookup inside the model.

A cancelled decode kills its worker: a decoder cannot be interrupted mid-utterance, and a stale
decode of a long utterance would otherwise hold a core for seconds. The pool starts a fresh
worker on next need (~0.7 s, paid by that next decode if no other worker is idle).
"""

from __future__ import annotations

import asyncio
import queue
import struct
import subprocess
import sys
import threading
import weakref

from flow.contract.cpu_pool import CancelToken
from flow.contract.providers import ProviderError

_HEADER = struct.Struct("<cI")  # status b"+" (ok) or b"!" (error), payload length
WORKER_CODE = r"""
import os, struct, sys
H = struct.Struct("<cI")
inp, out = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)  # whatever the C library prints goes to stderr, never into the reply pipe
def send(ok, text):
    data = text.encode("utf-8")
    out.write(H.pack(b"+" if ok else b"!", len(data)) + data)
    out.flush()
try:
    from pocketsphinx import Decoder
    # batch CMN: each utterance normalised on its own, so earlier callers never shift the next
    decoder = Decoder(loglevel="FATAL", cmn="batch")
except Exception as err:
    send(False, f"pocketsphinx failed to start: {err}")
    sys.exit(1)
send(True, "ready")
while True:
    head = inp.read(4)
    if len(head) < 4:
        break  # parent closed the pipe (or exited): so do we
    (n,) = struct.unpack("<I", head)
    pcm = inp.read(n)
    if len(pcm) < n:
        break
    try:
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        send(True, " ".join(hyp.hypstr.split()) if hyp is not None else "")
    except Exception as err:
        send(False, f"pocketsphinx failed: {err}")
        break  # the decoder may be mid-utterance: let the next call start a fresh worker
"""
"""The worker process: builds one `Decoder`, then answers `<u32 length><PCM>` with status+text."""


class DecoderWorker:
    """One decoder in its own process. Blocking methods: worker threads only, one at a time."""

    def __init__(self) -> None:
        # -P: the working directory is not put on the worker's sys.path
        self.proc = subprocess.Popen([sys.executable, "-P", "-c", WORKER_CODE], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        self.broken = False
        """Set once the worker must not be used again (exited, pipe out of step, or closed)."""
        self._busy = False
        try:
            self._reply()  # wait for "ready", or raise why not
        except BaseException:
            self.close()
            raise

    def _reply(self) -> str:
        head = self._read(_HEADER.size)
        status, n = _HEADER.unpack(head)
        text = self._read(n).decode("utf-8")
        if status != b"+":
            raise ProviderError(text)
        return text

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            part = self.proc.stdout.read(n - len(data))  # type: ignore[union-attr]  # buffered: all or EOF
            if not part:
                self.broken = True
                raise ProviderError(f"pocketsphinx worker exited (code {self.proc.poll()})")
            data += part
        return data

    def decode(self, pcm: bytes) -> str:
        """The hypothesis for 16 kHz mono s16le: lowercase words, "" when nothing was heard."""
        self._busy = True
        try:
            if self.broken:
                raise ProviderError("pocketsphinx worker closed")
            stdin = self.proc.stdin
            assert stdin is not None
            stdin.write(struct.pack("<I", len(pcm)) + pcm)
            stdin.flush()
            return self._reply()
        except ProviderError:
            self.broken = True
            raise
        except BaseException as err:
            self.broken = True
            raise ProviderError(f"pocketsphinx worker gone: {err!r}") from err
        finally:
            self._busy = False

    @property
    def busy(self) -> bool:
        """Decoding now."""
        return self._busy

    @property
    def alive(self) -> bool:
        return not self.broken and self.proc.poll() is None

    def kill(self) -> None:
        """Stop the process now, from any thread; the thread decoding on it sees the pipe break."""
        self.broken = True  # before the kill: the pool must never hand this worker out again
        self.proc.kill()

    def close(self) -> None:
        """End the process (it exits when its stdin closes). Idempotent.

        A worker in use is killed instead, and its pipes are left to the thread using it, which
        sees them break and closes the worker again once it is done.
        """
        self.broken = True
        if self._busy:
            self.proc.kill()
            return
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class DecoderPool:
    """Up to `size` decoder workers, started on demand (never more than `size` alive) and reused."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self.started = 0
        """Worker processes (decoders) ever started; tests and benchmarks read it."""
        self.threads: set[str] = set()
        """Names of the threads that decoded (the event loop's must never be among them)."""
        self.cancelled = 0
        """Decodes stopped by a cancel (their workers killed)."""
        self._free: queue.LifoQueue[DecoderWorker | None] = queue.LifoQueue()
        """Idle workers; `None` wakes a waiter because a slot became free."""
        self._alive: list[DecoderWorker] = []
        self._starting = 0
        self._lock = threading.Lock()
        weakref.finalize(self, _close_all, self._alive)  # at exit, stop the workers cleanly

    def _checkout(self) -> DecoderWorker:
        while True:
            try:
                worker = self._free.get_nowait()
            except queue.Empty:
                with self._lock:
                    start = len(self._alive) + self._starting < self.size
                    if start:
                        self._starting += 1  # reserve the slot; start outside the lock
                if start:
                    return self._start()
                worker = self._free.get()  # all busy: wait for one to come back
            if worker is not None and worker.alive:
                return worker
            if worker is not None:
                self._discard(worker)

    def _start(self) -> DecoderWorker:
        try:
            worker = DecoderWorker()
        except BaseException:
            with self._lock:
                self._starting -= 1
            self._free.put(None)
            raise
        with self._lock:
            self._starting -= 1
            self._alive.append(worker)
            self.started += 1
        return worker

    def _discard(self, worker: DecoderWorker) -> None:
        with self._lock:
            if worker in self._alive:
                self._alive.remove(worker)
        worker.close()
        self._free.put(None)  # a slot is free: wake a waiter, which starts a new worker

    def decode(self, pcm: bytes, cancel: CancelToken | None = None) -> str:
        """Blocking (worker threads only): the text for 16 kHz mono s16le.

        `cancel` kills the worker mid-decode and raises `asyncio.CancelledError`.
        """
        cancel = cancel or CancelToken()
        cancel.raise_if_cancelled()  # before checking out: a hook would kill an idle worker
        worker = self._checkout()
        self.threads.add(threading.current_thread().name)
        try:
            with cancel.hook(worker.kill):
                return worker.decode(pcm)
        except ProviderError as err:
            if cancel.cancelled:  # the pipe broke because we killed it: not a failure
                with self._lock:
                    self.cancelled += 1
                raise asyncio.CancelledError("pocketsphinx decode cancelled") from err
            raise
        finally:
            if worker.alive:
                self._free.put(worker)
            else:  # crashed or closed: its slot goes to the next caller
                self._discard(worker)

    def preload(self) -> None:
        """Blocking: have at least one worker alive and idle."""
        if not self.workers():
            self._free.put(self._checkout())

    def workers(self) -> list[DecoderWorker]:
        """The live workers (idle or busy)."""
        with self._lock:
            return list(self._alive)

    def close(self) -> None:
        """Stop every worker (server shutdown); calls in flight fail, later ones start anew."""
        with self._lock:
            workers = list(self._alive)
            self._alive.clear()
        _close_all(workers)


def _close_all(workers: list[DecoderWorker]) -> None:
    for worker in list(workers):
        worker.close()
