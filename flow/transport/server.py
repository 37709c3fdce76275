"""The aiohttp + python-socketio server: connections become sessions, `/health` tells the state.

One `VoicegraphServer` serves one graph to every new connection (swappable with `set_graph`: live
sessions finish on the graph they started with). Authentication, the session cap and CORS are
checked here, every packet's shape at the door (`flow.transport.door`), sizes and rates by the
session, so nodes only ever see well-formed events. On the way out, each client's events go
through its bounded `Outbox`: a client that stops reading is disconnected (`slow_consumer`)
instead of growing the server's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import socketio
from aiohttp import web

from flow.contract.node import SessionContext
from flow.contract.resources import Resources
from flow.graph.loader import shown_path
from flow.graph.runtime import GraphInstance
from flow.graph.spec import GraphSpec
from flow.transport import liveness
from flow.transport.door import WAITING_CONNECTIONS, DoorServer, QuietRepeats
from flow.transport.outbox import Connections, Outbox
from flow.transport.session import Session
from flow.transport.wire import CLIENT_EVENTS

log = logging.getLogger("voicegraph.server")

VERSION = "0.1.0"
ENGINE_MARGIN_BYTES = 256 * 1024
"""The engine accepts this much more than the application limit, so an oversized chunk gets a
`payload_too_large` error instead of a silent disconnect."""
REPORT_INTERVAL_S = 1.0


def _library_logger(name: str) -> logging.Logger:
    """A logger of ours for python-socketio/engine.io: theirs gets a handler of its own besides the
    root's (every line printed twice), and theirs at INFO logs each packet. Repeated tracebacks
    are counted, not printed (`QuietRepeats`)."""
    logger = logging.getLogger(name)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.ERROR)
    if not any(isinstance(f, QuietRepeats) for f in logger.filters):
        logger.addFilter(QuietRepeats())
    return logger


class VoicegraphServer:
    """The Socket.IO protocol endpoint plus `/health`, for one graph and one `Resources`."""

    def __init__(self, spec: GraphSpec, resources: Resources) -> None:
        self.spec = spec
        self.resources = resources
        self.settings = resources.settings
        self.sessions: dict[str, Session] = {}
        self.outboxes: dict[str, Outbox] = {}
        """Each live client's bounded way out (closed with its session)."""
        self.started = time.monotonic()
        origins: Any = list(self.settings.cors_origins)
        if "*" in origins:
            origins = "*"
        self.sio = DoorServer(
            session_of=lambda sid: self.sessions.get(sid),
            transport_of=lambda eio_sid: self.connections.engine_transport(eio_sid),
            max_connections=self.settings.max_sessions + WAITING_CONNECTIONS,
            async_mode="aiohttp",
            cors_allowed_origins=origins,
            # any origin may connect, but none with the browser's credentials (cookies): engine.io
            # would otherwise reflect every Origin with `Access-Control-Allow-Credentials: true`
            cors_credentials=origins != "*",
            max_http_buffer_size=self.settings.max_message_bytes * 2 + ENGINE_MARGIN_BYTES,
            logger=_library_logger("voicegraph.socketio"),
            engineio_logger=_library_logger("voicegraph.engineio"),
            # Handlers never await before routing an event, so run them inline: no task per
            # chunk, and chunks of one client can never be reordered (python-socketio #284).
            async_handlers=False,
            ping_interval=self.settings.ping_interval_s,
            ping_timeout=self.settings.ping_timeout_s,
        )
        liveness.install(self.sio)  # a dead transport closes its session at once (see liveness)
        self.connections = Connections(self.sio)
        self.app = web.Application(middlewares=[self._cors, self.connections.middleware])
        self.app.router.add_get("/health", self._health)
        self.sio.attach(self.app)
        self.app.on_shutdown.append(self._on_shutdown)
        self.app.on_startup.append(self._on_startup)
        self._reporter: asyncio.Task | None = None
        self._preloading: asyncio.Task | None = None
        self._register_handlers()

    def set_graph(self, spec: GraphSpec) -> None:
        """New sessions use `spec`; live ones keep the graph they were built with."""
        self.spec = spec
        self.resources.monitor.publish("graph", name=spec.name, path=spec.path)

    # ------------------------------------------------------------------ monitoring

    def node_counters(self) -> dict[str, dict[str, int]]:
        """Per-node counters summed over the live sessions that run the current graph."""
        total: dict[str, dict[str, int]] = {}
        for session in list(self.sessions.values()):
            if session.spec is not self.spec:
                continue
            for node, counts in session.ctx.counters.items():
                mine = total.setdefault(node, {})
                for what, n in counts.items():
                    mine[what] = mine.get(what, 0) + n
        return total

    def announce(self) -> None:
        """Publish the live sessions and server figures now (a new observer's starting point)."""
        for session in list(self.sessions.values()):
            session.announce()
        self._publish_figures()

    def _publish_figures(self) -> None:
        self.resources.monitor.publish(
            "server", sessions=len(self.sessions), graph=self.spec.name, path=self.spec.path,
            counters=self.node_counters(), uptime=round(time.monotonic() - self.started, 1))

    async def _report(self) -> None:
        """Once a second, while someone watches: server-wide figures (off the audio path)."""
        monitor = self.resources.monitor
        while True:
            await asyncio.sleep(REPORT_INTERVAL_S)
            if monitor.watched:
                self._publish_figures()

    # ------------------------------------------------------------------ Socket.IO

    def _register_handlers(self) -> None:
        sio = self.sio
        sio.on("connect", self._connect)
        sio.on("disconnect", self._disconnect)
        for event in CLIENT_EVENTS:  # no catch-all: the door answers every other name
            sio.on(event, self._make_handler(event))

    async def _connect(self, sid: str, environ: dict, auth: Any = None) -> None:
        token = self.settings.token
        if token is not None:
            given = auth.get("token") if isinstance(auth, dict) else None
            if not isinstance(given, str) or not hmac.compare_digest(
                    given.encode("utf-8", "surrogatepass"), token.get_secret_value().encode("utf-8")):
                log.info("refused connection %s: bad or missing token", sid)
                raise socketio.exceptions.ConnectionRefusedError("unauthorized")
        limit = self.settings.max_sessions
        if len(self.sessions) >= limit:
            log.warning("refused connection %s: %d sessions, the limit (VOICEGRAPH_MAX_SESSIONS)", sid, limit)
            raise socketio.exceptions.ConnectionRefusedError("server_full", {
                "code": "server_full", "message": f"the server is at its limit of {limit} sessions; try later"})

        request = environ.get("aiohttp.request")
        peer = {
            "remote": getattr(request, "remote", None) or environ.get("REMOTE_ADDR", ""),
            "agent": environ.get("HTTP_USER_AGENT", ""),
            "label": str(auth.get("label", ""))[:64] if isinstance(auth, dict) else "",
        }
        outbox = Outbox(self.sio, sid, max_bytes=self.settings.max_backlog_bytes,
                        transport=lambda: self.connections.transport(sid),
                        on_evict=lambda error: self._slow_consumer(sid, error))
        try:
            session = Session(sid, self.spec, self.resources, outbox, peer)
        except Exception as err:
            await outbox.aclose()
            log.exception("could not build the graph for %s", sid)
            raise socketio.exceptions.ConnectionRefusedError("internal") from err
        session.ctx.on_close(outbox.aclose)
        self.sessions[sid] = session
        self.outboxes[sid] = outbox
        log.info("session %s connected (%d live)", sid, len(self.sessions))

    async def _disconnect(self, sid: str, reason: Any = None, *args: Any) -> None:
        if reason == self.sio.reason.PING_TIMEOUT:
            # the peer is gone: its TCP connection would wait minutes for acknowledgements
            transport = self.connections.transport(sid)
            if transport is not None:
                transport.abort()
        session = self.sessions.pop(sid, None)
        self.outboxes.pop(sid, None)
        if session is not None:
            await session.aclose()
            log.info("session %s closed (%d live)", sid, len(self.sessions))

    def _slow_consumer(self, sid: str, error: dict[str, Any]) -> None:
        """Show observers why a session is about to close (its outbox cut the client off)."""
        session = self.sessions.get(sid)
        if session is not None:
            session.probe.publish_out("error", error)

    def _make_handler(self, event: str):
        async def handler(sid: str, *args: Any) -> None:
            # No await before session.handle(): chunks must keep their arrival order.
            session = self.sessions.get(sid)
            if session is not None:
                session.handle(event, args[0] if args else None)

        return handler

    # ------------------------------------------------------------------ HTTP

    @web.middleware
    async def _cors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """CORS for our own routes (engine.io answers for `/socket.io/`): a configured origin is
        reflected; with `*` the answer is `*`, which browsers never combine with credentials."""
        response = await handler(request)
        origin = request.headers.get("Origin")
        if not origin or response.prepared or "Access-Control-Allow-Origin" in response.headers:
            return response
        allowed = self.settings.cors_origins
        if origin in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers.add("Vary", "Origin")
        elif "*" in allowed:
            response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    def providers(self) -> dict[str, str]:
        """Which provider each node of the current graph uses (`auto` resolved)."""
        out: dict[str, str] = {}
        for node in self.spec.nodes.values():
            name = node.cls.provider_name(node.params, self.resources)
            if name:
                out[node.id] = name
        return out

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({
            "status": "ok",
            "version": VERSION,
            "uptime": round(time.monotonic() - self.started, 3),
            "sessions": len(self.sessions),
            "max_sessions": self.settings.max_sessions,
            "connections": len(self.sio.eio.sockets),
            "max_connections": self.sio.max_connections,
            "graph": {"name": self.spec.name, "path": shown_path(self.spec.path)},  # not where files are
            "providers": self.providers(),
        })

    async def _on_startup(self, app: web.Application) -> None:
        await self.warm(self.spec)
        self._reporter = asyncio.get_running_loop().create_task(self._report(), name="monitor-report")

    async def warm(self, spec: GraphSpec) -> None:
        """Build one session's graph before the port opens: provider modules import and shared
        clients are made now, not on the first caller's clock (that import held the loop for
        ~0.3 s on the first connect). With `preload`, its nodes then load their models in the
        background (pocketsphinx worker ~0.7 s, piper voice ~0.5 s: the first turn's wait)."""
        ctx = SessionContext("warm-up", self.resources, asyncio.get_running_loop())
        try:
            graph = GraphInstance(spec, ctx)
        except Exception:
            log.exception("warming graph %s failed (sessions will report it)", spec.name)
            await ctx.aclose()
            return
        if not self.settings.preload:
            await ctx.aclose()
            return

        async def preload() -> None:
            try:
                results = await asyncio.gather(*(n.preload() for n in graph.nodes.values()),
                                               return_exceptions=True)
                for node, result in zip(graph.nodes, results, strict=True):
                    if isinstance(result, Exception):
                        log.warning("preloading %s failed (it loads on first use): %s", node, result)
            finally:
                await ctx.aclose()

        self._preloading = asyncio.get_running_loop().create_task(preload(), name="preload")

    async def _on_shutdown(self, app: web.Application) -> None:
        for task in (self._reporter, self._preloading):
            if task is not None:
                task.cancel()
        await self.close_sessions()

    async def close_sessions(self) -> None:
        sessions, self.sessions, self.outboxes = list(self.sessions.values()), {}, {}
        await asyncio.gather(*(s.aclose() for s in sessions), return_exceptions=True)


@contextlib.asynccontextmanager
async def running(server: VoicegraphServer, host: str, port: int) -> AsyncIterator[str]:
    """Serve on host:port (0 picks a free port) inside the current loop; yields the base URL."""
    runner = web.AppRunner(server.app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    try:
        yield f"http://{shown}:{bound}"
    finally:
        await server.close_sessions()
        await runner.cleanup()
        await server.resources.aclose()
