"""Serving the dashboard: NiceGUI on its own port, in the same event loop as the Socket.IO server.

NiceGUI is a FastAPI app; we run it with uvicorn as one more task of voicegraph's loop (the
Socket.IO server stays aiohttp, untouched). We bind the socket ourselves so a busy port is a clear
error at start-up and port 0 works in tests, and we leave signal handling to `voicegraph serve`.
When `VOICEGRAPH_TOKEN` is set, every page, asset and websocket of the dashboard needs it —
including `/reply-audio/<response id>/<seq | full>`, where the reply players fetch their MP3 (the
monitoring events carry only a reference to it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import uvicorn
from fastapi import FastAPI, Request, Response

from flow.transport.server import VoicegraphServer
from ui import nodes_page
from ui.dashboard import Dashboard
from ui.door import refusal
from ui.model import REPLY_AUDIO_PATH

log = logging.getLogger("voicegraph.ui")

COOKIE = "voicegraph_ui"


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers: `voicegraph serve` owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class RunningDashboard:
    url: str
    dashboard: Dashboard
    _server: _EmbeddedServer
    _task: asyncio.Task

    async def aclose(self) -> None:
        await self.dashboard.aclose()
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self._task, 5)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or OSError saying why not (e.g. the port is taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


def build_app(dashboard: Dashboard, token: str | None) -> FastAPI:
    from nicegui import ui

    app = FastAPI(title="voicegraph dashboard", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get(REPLY_AUDIO_PATH + "/{response}/{part}")
    def reply_audio(response: str, part: str, request: Request) -> Response:  # before NiceGUI's "/" mount
        mp3 = dashboard.reply_audio(f"{response}/{part}")
        if mp3 is None:
            return Response("no such reply audio (or no longer kept)", status_code=404, media_type="text/plain")
        return audio_response(mp3, request.headers.get("range"))

    ui.page(nodes_page.PATH)(nodes_page.nodes_page)  # the node reference, beside the testbench
    ui.run_with(app, root=dashboard.root, title="voicegraph", favicon="🎙", show_welcome_message=False,
                reconnect_timeout=10.0)
    if token:
        app.add_middleware(TokenGate, token=token)
    return app


AUDIO_HEADERS = {"Cache-Control": "private, max-age=600", "Accept-Ranges": "bytes"}
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def audio_response(mp3: bytes, range_header: str | None) -> Response:
    """The MP3, whole or the one byte range asked for (206). Chromium reads a clip's duration
    before it is played (`preload="metadata"`) only from a resource that says its length and
    takes range requests, as a file server's does; a range past the end is a 416."""
    size = len(mp3)
    found = _RANGE.fullmatch((range_header or "").strip())
    if found is None or found.groups() == ("", ""):  # none, or one we do not serve (several ranges)
        return Response(mp3, media_type="audio/mpeg", headers=AUDIO_HEADERS)
    first, last = found.groups()
    if first:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    else:  # the last N bytes
        start, end = max(0, size - int(last)), size - 1
    if start >= size or start > end:
        return Response(status_code=416, headers={**AUDIO_HEADERS, "Content-Range": f"bytes */{size}"})
    return Response(mp3[start:end + 1], status_code=206, media_type="audio/mpeg",
                    headers={**AUDIO_HEADERS, "Content-Range": f"bytes {start}-{end}/{size}"})


async def serve_dashboard(server: VoicegraphServer, socketio_url: str, host: str, port: int,
                          insecure: bool = False) -> RunningDashboard:
    """Start the dashboard for `server` (whose protocol is at `socketio_url`) on host:port.

    PermissionError, before anything is bound, for a non-loopback host without a token unless
    `insecure` (see `ui.door`)."""
    token = server.settings.token
    refused = refusal(host, token is not None, insecure)
    if refused:
        raise PermissionError(refused)
    sock = bind(host, port)
    dashboard = Dashboard(server, socketio_url)
    app = build_app(dashboard, token.get_secret_value() if token else None)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    ui_server = _EmbeddedServer(config)
    task = asyncio.get_running_loop().create_task(ui_server.serve(sockets=[sock]), name="dashboard-http")
    while not ui_server.started:
        if task.done():
            task.result()  # raises what stopped it
            raise RuntimeError("the dashboard stopped during start-up")
        await asyncio.sleep(0.02)
    bound = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return RunningDashboard(f"http://{shown}:{bound}", dashboard, ui_server, task)


# ---------------------------------------------------------------------- token gate


def _digest(token: str) -> str:
    return hmac.new(token.encode(), b"voicegraph-dashboard", hashlib.sha256).hexdigest()


LOGIN_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>voicegraph: token</title></head>
<body style="font-family: sans-serif; margin: 4rem auto; max-width: 24rem">
<h2>voicegraph dashboard</h2><p>{message}</p>
<form method="post" action="/login?next={next}">
<input type="password" name="token" placeholder="VOICEGRAPH_TOKEN" autofocus style="width: 100%">
<button type="submit" style="margin-top: 1rem">Open</button></form></body></html>"""


def local_path(target: str) -> str:
    """`target` if it is a path on this dashboard, else `/`: where a login may send the browser.

    `//evil.example` and `/\\evil.example` (browsers read `\\` as `/`, and drop tabs and newlines)
    are other hosts, not paths; so are `https:…` and anything with a scheme or host.
    """
    if (len(target) > 2048 or not target.startswith("/") or "\\" in target
            or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target)):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return "/"
    return target


class TokenGate:
    """ASGI middleware: the dashboard answers only a browser that gave `VOICEGRAPH_TOKEN`.

    The token can be typed into a login form or passed once as `?token=`; either sets an
    HttpOnly cookie holding an HMAC of it (never the token itself).
    """

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token
        self.cookie = _digest(token)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        jar = SimpleCookie(headers.get("cookie", ""))
        given = jar[COOKIE].value if COOKIE in jar else ""
        if hmac.compare_digest(given, self.cookie):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return None
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        path = scope.get("path", "/")
        if path == "/login" and scope.get("method") == "POST":
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if len(body) > 4096 or not message.get("more_body"):
                    break
            typed = parse_qs(body.decode("utf-8", "replace")).get("token", [""])[0]
            return await self._login(send, typed, local_path(query.get("next", ["/"])[0]))
        if "token" in query:
            return await self._login(send, query["token"][0], local_path(path))
        return await self._page(send, 401, "This dashboard needs the server's token.", path)

    async def _login(self, send: Any, typed: str, next_path: str) -> None:
        if not hmac.compare_digest(typed.encode(), self.token.encode()):
            return await self._page(send, 401, "Wrong token.", next_path)
        cookie = f"{COOKIE}={self.cookie}; HttpOnly; SameSite=Strict; Path=/"
        await send({"type": "http.response.start", "status": 303,
                    "headers": [(b"location", next_path.encode()), (b"set-cookie", cookie.encode())]})
        await send({"type": "http.response.body", "body": b""})
        return None

    async def _page(self, send: Any, status: int, message: str, next_path: str) -> None:
        body = LOGIN_PAGE.format(message=message, next=quote(next_path)).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/html; charset=utf-8")]})
        await send({"type": "http.response.body", "body": body})
