"""A small OpenAI-compatible HTTP server for tests: transcription, chat (plain and SSE), speech.

The real `openai` SDK talks to it over loopback, so the tests exercise the SDK's real request
building, streaming and error handling. It records every request and notices when a client
abandons one (barge-in must cancel upstream work, not just ignore it). Each endpoint's `Behaviour`
is also a set of fault switches (an HTTP status, a hang, a stream that stalls or is cut mid-way,
malformed or empty answers, an error that quotes the Authorization header); `heal()` clears them.

Run by hand: `python -m flow.testing.openai_stub --port 8089` (prints its base URL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from flow.audio.ffmpeg import ffmpeg_path


@dataclass
class Behaviour:
    """How one endpoint answers: after `latency` s, with HTTP `status` (200 = success), or never."""

    latency: float = 0.0
    status: int = 200
    hang: bool = False
    """Never answer (the client's timeout must end the call)."""
    first_token_latency: float = 0.0
    token_delay: float = 0.0
    stall_after: int | None = None
    """Chat stream: after this many tokens, send nothing more and never finish."""
    cut_after: int | None = None
    """Chat stream: after this many tokens, drop the connection (no `[DONE]`, no end of body)."""
    malformed: bool = False
    """Chat stream: an event whose data is cut-off JSON; transcription: a body that is not JSON."""
    empty: bool = False
    """Chat stream: `[DONE]` and nothing before it."""
    echo_auth: bool = False
    """An error (`status` other than 200) whose message quotes the request's Authorization header,
    as some proxies' 401 pages do."""


@dataclass
class Call:
    """One request the stub received."""

    endpoint: str
    body: dict[str, Any]
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    cancelled_at: float | None = None
    upload: bytes = b""


def _mp3(seconds: float) -> bytes:
    """A real MP3 (a quiet 440 Hz tone) of `seconds`, made by ffmpeg."""
    return subprocess.run(
        [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
         f"sine=frequency=440:duration={seconds:.2f}:sample_rate=22050", "-af", "volume=0.1",
         "-b:a", "32k", "-f", "mp3", "pipe:1"],
        capture_output=True, check=True).stdout


def _echo_reply(messages: list[dict[str, Any]]) -> str:
    users = [m.get("content", "") for m in messages if m.get("role") == "user"]
    return f"You said: {users[-1] if users else ''}. Here is my answer."


class OpenAIStub:
    """`async with OpenAIStub() as stub:` → `stub.base_url`, `stub.calls`, per-endpoint behaviour."""

    def __init__(self, transcript: str | Callable[[bytes], str] = "hello there",
                 reply: str | Callable[[list[dict[str, Any]]], str] = _echo_reply) -> None:
        self.transcript = transcript
        self.reply = reply
        self.stt = Behaviour()
        self.chat = Behaviour()
        self.tts = Behaviour()
        self.calls: list[Call] = []
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._mp3_second = b""
        """One second of MP3, made once at start; a reply of n seconds is n copies (MP3 frames
        concatenate), so concurrent speech requests never wait on ffmpeg."""
        self._changed: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self, port: int = 0) -> OpenAIStub:
        self._changed = asyncio.Event()
        if not self._mp3_second:
            self._mp3_second = await asyncio.to_thread(_mp3, 1.0)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/audio/transcriptions", self._transcriptions)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/audio/speech", self._speech)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{bound}/v1"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> OpenAIStub:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start_in_thread(self, port: int = 0) -> OpenAIStub:
        """Serve from a background thread (for a server under test in another process)."""
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.start(port))
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self.stop())

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop_thread(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def heal(self) -> None:
        """Every endpoint answers normally again (all fault switches off)."""
        self.stt, self.chat, self.tts = Behaviour(), Behaviour(), Behaviour()

    # ------------------------------------------------------------------ queries

    def of(self, endpoint: str) -> list[Call]:
        return [c for c in self.calls if c.endpoint == endpoint]

    @property
    def cancelled(self) -> list[Call]:
        return [c for c in self.calls if c.cancelled_at is not None]

    async def wait_for(self, pred: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait (in the stub's own loop) until `pred()` holds; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise AssertionError(f"stub condition not met in {timeout}s; calls: "
                                     f"{[(c.endpoint, c.cancelled_at is not None) for c in self.calls]}")
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------------ handlers

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization", "").startswith("Bearer ")

    async def _tracked(self, call: Call, behaviour: Behaviour, answer: Callable[[], Any],
                       request: web.Request) -> Any:
        self.calls.append(call)
        try:
            if behaviour.hang:
                await asyncio.sleep(3600)
            await asyncio.sleep(behaviour.latency)
            if behaviour.status != 200:
                quoted = request.headers.get("Authorization", "") if behaviour.echo_auth else None
                return _error(behaviour.status, quoted)
            result = await answer()
            call.finished = time.monotonic()
            return result
        except (asyncio.CancelledError, ConnectionError):
            # cancelled while waiting, or the client hung up while we were writing: both mean the
            # client abandoned the request
            call.cancelled_at = time.monotonic()
            raise

    async def _transcriptions(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return _error(401)
        fields, data = _form(request.headers.get("Content-Type", ""), await request.read())
        call = Call("transcriptions", fields, upload=data)

        async def answer() -> web.Response:
            if self.stt.malformed:
                return web.Response(text='{"text": "hel', content_type="application/json")
            text = self.transcript(data) if callable(self.transcript) else self.transcript
            return web.json_response({"text": text})

        return await self._tracked(call, self.stt, answer, request)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return _error(401)
        body = await request.json()
        call = Call("chat", body)
        text = self.reply(body.get("messages", [])) if callable(self.reply) else self.reply
        b = self.chat
        if not body.get("stream"):
            async def answer() -> web.Response:
                return web.json_response(_completion(body, text))

            return await self._tracked(call, b, answer, request)

        async def stream() -> web.StreamResponse:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            await asyncio.sleep(b.first_token_latency)
            if b.empty:
                await resp.write(b"data: [DONE]\n\n")
                await resp.write_eof()
                return resp
            await resp.write(b"data: " + json.dumps(_chunk(body, None)).encode() + b"\n\n")
            if b.malformed:
                await resp.write(b'data: {"id":"chatcmpl-stub","choices":[{"delta":{"content":"Hel\n\n')
            for i, token in enumerate(_tokens(text)):
                if i == b.stall_after:
                    await asyncio.sleep(3600)
                if i == b.cut_after:
                    assert request.transport is not None
                    request.transport.abort()
                    await asyncio.sleep(3600)  # the lost connection cancels the handler
                if i and b.token_delay:
                    await asyncio.sleep(b.token_delay)
                await resp.write(b"data: " + json.dumps(_chunk(body, token)).encode() + b"\n\n")
            await resp.write(b'data: {"id":"x","object":"chat.completion.chunk","created":0,'
                             b'"model":"m","choices":[]}\n\n')
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
            return resp

        return await self._tracked(call, b, stream, request)

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return _error(401)
        body = await request.json()
        call = Call("speech", body)

        async def answer() -> web.Response:
            seconds = max(1, min(20, round(len(body.get("input", "")) / 15)))
            return web.Response(body=self._mp3_second * seconds, content_type="audio/mpeg")

        return await self._tracked(call, self.tts, answer, request)


_BOUNDARY = re.compile(r'boundary="?([^";]+)"?')
_NAME = re.compile(rb'[;\s]name="([^"]*)"')


def _form(content_type: str, body: bytes) -> tuple[dict[str, str], bytes]:
    """The fields and the `file` of a multipart/form-data upload (what the SDK sends). Read here
    rather than by aiohttp's multipart reader, which cost ~1 ms per upload in the stub's process:
    on a turn's critical path, in a figure meant for providers that take no time."""
    found = _BOUNDARY.search(content_type)
    if found is None:
        return {}, b""
    fields: dict[str, str] = {}
    data = b""
    for part in body.split(b"--" + found.group(1).encode())[1:]:
        if part.startswith(b"--"):
            break  # the closing delimiter
        head, _, value = part.partition(b"\r\n\r\n")
        value = value[:-2] if value.endswith(b"\r\n") else value
        name = _NAME.search(head)
        if name is None:
            continue
        if name.group(1) == b"file":
            data = value
        else:
            fields[name.group(1).decode()] = value.decode()
    return fields, data


def _tokens(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def _chunk(body: dict[str, Any], token: str | None) -> dict[str, Any]:
    delta = {"role": "assistant", "content": ""} if token is None else {"content": token}
    return {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": body.get("model", "stub"),
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


def _completion(body: dict[str, Any], text: str) -> dict[str, Any]:
    return {"id": "chatcmpl-stub", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "stub"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def _error(status: int, quoted_auth: str | None = None) -> web.Response:
    message = f"stub failure {status}"
    if quoted_auth is not None:
        message += f": rejected header 'Authorization: {quoted_auth}'"
    return web.json_response({"error": {"message": message, "type": "server_error", "code": None}}, status=status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8089)
    args = parser.parse_args()
    stub = OpenAIStub()

    async def run() -> None:
        await stub.start(args.port)
        print(stub.base_url, flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
