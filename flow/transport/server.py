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
from flow.conversations.conversation import Conversation
from flow.conversations.store import new_conversation_id, valid_id
from flow.graph.loader import GraphError, load_graph_text, shown_path
from flow.graph.runtime import GraphInstance
from flow.graph.spec import GraphSpec
from flow.metrics import CONTENT_TYPE
from flow.transport import liveness
from flow.transport.cluster import Cluster, socketio_manager
from flow.transport.door import WAITING_CONNECTIONS, DoorServer, QuietRepeats
from flow.transport.outbox import Connections, Outbox
from flow.transport.session import Session
from flow.transport.session_log import FORMAT, RecordingWriter, SessionLog
from flow.transport.session_log import VERSION as RECORDING_VERSION
from flow.transport.wire import CLIENT_EVENTS

log = logging.getLogger("voicegraph.server")

VERSION = "0.1.0"
ENGINE_MARGIN_BYTES = 256 * 1024
"""The engine accepts this much more than the application limit, so an oversized chunk gets a
`payload_too_large` error instead of a silent disconnect."""
REPORT_INTERVAL_S = 1.0
HEALTH_CHECK_TIMEOUT_S = 1.0
"""`/health` answers 503 when the conversation store or Redis does not answer within this."""


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
        resources.conversations  # noqa: B018 -- opened now: a wrong VOICEGRAPH_STORE fails at start-up
        self.draining = False
        """Set by `drain` (SIGTERM): `/health` says 503 so balancers send no one new."""
        redis_url = self.settings.redis_url
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
            **({"client_manager": socketio_manager(redis_url)} if redis_url else {}),
        )
        self.cluster = Cluster(redis_url, resources.monitor, self.announce, self.apply_text) if redis_url else None
        """The link to the other workers sharing `VOICEGRAPH_REDIS_URL` (None: a lone process)."""
        liveness.install(self.sio)  # a dead transport closes its session at once (see liveness)
        self.connections = Connections(self.sio)
        self.app = web.Application(middlewares=[self._cors, self.connections.middleware])
        self.app.router.add_get("/health", self._health)
        self.app.router.add_get("/metrics", self._metrics)
        self.metrics = resources.metrics
        self.metrics.sessions.set_function(lambda: len(self.sessions))
        self.metrics.count_nodes_of(self._live_counters)
        self.sio.attach(self.app)
        self.app.on_shutdown.append(self._on_shutdown)
        self.app.on_startup.append(self._on_startup)
        self._reporter: asyncio.Task | None = None
        self._lag: asyncio.Task | None = None
        self.recorder: RecordingWriter | None = None
        """Session recording to disk (`--record DIR`); None when off."""
        if self.settings.record_dir:
            self.recorder = RecordingWriter(self.settings.record_dir,
                                            max_session_bytes=self.settings.record_max_session_bytes,
                                            max_dir_bytes=self.settings.record_max_bytes)
        self._preloading: asyncio.Task | None = None
        self._register_handlers()

    def set_graph(self, spec: GraphSpec) -> None:
        """New sessions use `spec`; live ones keep the graph they were built with."""
        self.spec = spec
        self.resources.monitor.publish("graph", name=spec.name, path=spec.path)

    def apply_text(self, text: str) -> tuple[bool, str]:
        """Validate graph YAML from the dashboard's editor here and serve it to new sessions if it
        is valid (a cluster's Apply reaches every worker this way): (applied?, what happened)."""
        try:
            spec = load_graph_text(text, path="editor", env=self.settings.env, resources=self.resources,
                                   read_env=False)
        except GraphError as err:
            log.warning("graph from the editor not applied: %d problem(s)", len(err.issues))
            return False, f"{len(err.issues)} problem(s): " + "; ".join(str(i) for i in err.issues[:3])
        self.set_graph(spec)
        log.info("graph %r applied from the dashboard", spec.name)
        return True, f"applied {spec.name!r}"

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
                self.metrics.errors.labels("unauthorized").inc()
                raise socketio.exceptions.ConnectionRefusedError("unauthorized")
        if self.draining:
            raise socketio.exceptions.ConnectionRefusedError("server_full", {
                "code": "server_full", "message": "this worker is shutting down; connect again"})
        limit = self.settings.max_sessions
        if len(self.sessions) >= limit:
            log.warning("refused connection %s: %d sessions, the limit (VOICEGRAPH_MAX_SESSIONS)", sid, limit)
            self.metrics.errors.labels("server_full").inc()
            raise socketio.exceptions.ConnectionRefusedError("server_full", {
                "code": "server_full", "message": f"the server is at its limit of {limit} sessions; try later"})

        request = environ.get("aiohttp.request")
        peer = {
            "remote": getattr(request, "remote", None) or environ.get("REMOTE_ADDR", ""),
            "agent": environ.get("HTTP_USER_AGENT", ""),
            "label": str(auth.get("label", ""))[:64] if isinstance(auth, dict) else "",
        }
        conversation = await self._conversation(auth)
        outbox = Outbox(self.sio, sid, max_bytes=self.settings.max_backlog_bytes,
                        transport=lambda: self.connections.transport(sid),
                        on_evict=lambda error: self._slow_consumer(sid, error),
                        on_bytes=self.metrics.bytes_out.inc)
        try:
            session = Session(sid, self.spec, self.resources, outbox, peer, self._session_log(sid, peer),
                              conversation, cut_off=lambda code, message: self._cut_off(sid, code, message))
        except Exception as err:
            await outbox.aclose()
            log.exception("could not build the graph for %s", sid)
            raise socketio.exceptions.ConnectionRefusedError("internal") from err
        session.ctx.on_close(outbox.aclose)
        self.sessions[sid] = session
        self.metrics.connects.inc()
        self.outboxes[sid] = outbox
        # queued now, sent by the outbox's pump after python-socketio's CONNECT packet; recorded
        # like every other event handed to the client (a recording keeps which conversation it was)
        greeting = {"conversationId": conversation.id, "resumed": conversation.resumed}
        outbox.put("conversation", greeting)
        if session.log is not None:
            session.log.outbound("conversation", greeting)
        log.info("session %s connected (%d live)%s", sid, len(self.sessions),
                 f", continuing conversation {conversation.id[:6]}…" if conversation.resumed else "")

    async def _conversation(self, auth: Any) -> Conversation:
        """The conversation a connecting client continues (`auth: {conversationId}` that the store
        knows and has not expired) or a new one. A store that fails is no reason to refuse the
        client: it gets a new conversation, and the failure is logged."""
        store = self.resources.conversations
        wanted = auth.get("conversationId") if isinstance(auth, dict) else None
        if valid_id(wanted):
            try:
                history = await store.load(wanted)
            except Exception as err:
                log.warning("conversation store %s: loading failed: %s", store.describe(), err)
            else:
                if history is not None:
                    return Conversation(wanted, store, history, resumed=True)
        conversation = Conversation(new_conversation_id(), store)
        conversation.save(())  # known from now on: a reconnect before any turn continues it too
        return conversation

    async def _disconnect(self, sid: str, reason: Any = None, *args: Any) -> None:
        if reason == self.sio.reason.PING_TIMEOUT:
            # the peer is gone: its TCP connection would wait minutes for acknowledgements
            transport = self.connections.transport(sid)
            if transport is not None:
                transport.abort()
        session = self.sessions.pop(sid, None)
        self.outboxes.pop(sid, None)
        if session is not None:
            self.metrics.retire(session.ctx.counters)
            await session.aclose()
            log.info("session %s closed (%d live)", sid, len(self.sessions))

    def _session_log(self, sid: str, peer: dict[str, str]) -> SessionLog | None:
        if self.recorder is None:
            return None
        now = time.time()
        return self.recorder.session(sid, {
            "format": FORMAT, "version": RECORDING_VERSION, "session": sid,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            "started_unix_ms": round(now * 1000),
            "graph": {"name": self.spec.name, "path": shown_path(self.spec.path)},
            "peer": {"label": peer.get("label", ""), "agent": peer.get("agent", "")},
            "server": VERSION,
        })

    def _slow_consumer(self, sid: str, error: dict[str, Any]) -> None:
        """Show observers why a session is about to close (its outbox cut the client off)."""
        session = self.sessions.get(sid)
        if session is not None:
            session.probe.publish_out("error", error)

    def _cut_off(self, sid: str, code: str, message: str) -> None:
        """Disconnect a session's client at the door with a last `error` (it flooded)."""
        session = self.sessions.get(sid)
        if session is not None:
            session.probe.publish_out("error", {"code": code, "message": message})
        self.sio.cut(sid, code, message)

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

    async def readiness(self) -> dict[str, str]:
        """What this worker depends on and whether it answers now: `{"store": "ok", "redis": …}`."""
        checks: dict[str, Any] = {"store": self.resources.conversations.check}
        if self.cluster is not None:
            checks["redis"] = self.cluster.check
        out: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(), HEALTH_CHECK_TIMEOUT_S)
                out[name] = "ok"
            except Exception as err:
                out[name] = f"unreachable: {type(err).__name__}"
        return out

    async def _health(self, request: web.Request) -> web.Response:
        """200 when this worker can take clients (its store and Redis answer), else 503, so a
        balancer sends no one to a sick or draining worker."""
        ready = await self.readiness()
        ok = not self.draining and all(v == "ok" for v in ready.values())
        return web.json_response({
            "status": "ok" if ok else ("draining" if self.draining else "unavailable"),
            "worker": self.resources.monitor.server,
            "store": self.resources.conversations.describe(),
            "checks": ready,
            "version": VERSION,
            "uptime": round(time.monotonic() - self.started, 3),
            "sessions": len(self.sessions),
            "max_sessions": self.settings.max_sessions,
            "connections": len(self.sio.eio.sockets),
            "max_connections": self.sio.max_connections,
            "graph": {"name": self.spec.name, "path": shown_path(self.spec.path)},  # not where files are
            "providers": self.providers(),
        }, status=200 if ok else 503)

    def _live_counters(self) -> dict[str, dict[str, int]]:
        """Per-node counters summed over every live session, whatever its graph (for /metrics)."""
        total: dict[str, dict[str, int]] = {}
        for session in list(self.sessions.values()):
            for node, counts in session.ctx.counters.items():
                mine = total.setdefault(node, {})
                for what, n in counts.items():
                    mine[what] = mine.get(what, 0) + n
        return total

    async def _metrics(self, request: web.Request) -> web.Response:
        """The Prometheus text format; with `VOICEGRAPH_TOKEN` set, only for `Authorization: Bearer <token>`."""
        token = self.settings.token
        if token is not None:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                    given.strip().encode("utf-8", "surrogatepass"), token.get_secret_value().encode("utf-8")):
                return web.Response(status=401, text="unauthorized: send Authorization: Bearer <VOICEGRAPH_TOKEN>\n",
                                    headers={"WWW-Authenticate": 'Bearer realm="voicegraph"'})
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def _on_startup(self, app: web.Application) -> None:
        await self.warm(self.spec)
        if self.cluster is not None:
            await self.cluster.start()
        self._reporter = asyncio.get_running_loop().create_task(self._report(), name="monitor-report")
        self._lag = asyncio.get_running_loop().create_task(self.metrics.watch_loop(), name="loop-lag")

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
        for task in (self._reporter, self._preloading, self._lag):
            if task is not None:
                task.cancel()
        await self.close_sessions()
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.close)
        if self.cluster is not None:
            await self.cluster.aclose()

    async def drain(self, timeout: float) -> None:
        """A graceful stop (SIGTERM): take no new clients (`/health` 503, connects refused), let
        replies in flight finish — at most `timeout` seconds — then return; the caller closes."""
        self.draining = True
        deadline = time.monotonic() + timeout
        busy = [s for s in self.sessions.values() if s.busy]
        if busy:
            log.info("draining: %d session(s) with a reply in flight (up to %.0f s)", len(busy), timeout)
        while time.monotonic() < deadline:
            if not any(s.busy for s in list(self.sessions.values())):
                break
            await asyncio.sleep(0.05)  # a reply's end has no single event to wait for
        left = sum(s.busy for s in list(self.sessions.values()))
        if left:
            log.warning("drain time over: %d reply(ies) still in flight are cut off", left)

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
