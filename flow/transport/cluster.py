"""Workers that share a Redis (`VOICEGRAPH_REDIS_URL`): one Socket.IO, one dashboard, one Apply.

Several `voicegraph serve` processes behind a sticky balancer each serve their own clients. What
they share goes through Redis, with parts that exist for it:

- **Socket.IO**: python-socketio's `AsyncRedisManager`, so any worker (or another process) can emit
  to any client. A session's own events never take that way: its client is connected here, and
  the outbox sends with `ignore_queue` (a reply's MP3 through Redis to every worker would cost
  them all).
- **Monitoring**: a dashboard on any worker shows every worker's sessions. While some dashboard
  watches (a key with a short TTL that its worker renews), every worker subscribes a *relay* to
  its own monitor and publishes those events on `voicegraph:monitor`; the dashboard's worker puts
  the other workers' events into its own observers' buffers (`Monitor.inject`). Each event names
  its worker (`MonitorEvent.server`). Nobody watching: no relay, no traffic, as in one process.
- **Apply**: the graph editor's text goes to every worker on `voicegraph:control`; each validates
  it itself (its own providers, its own environment) and serves it to new sessions if valid,
  then publishes an `applied {ok, message}` monitoring event, so the dashboard shows per-worker
  results.

Reply audio is not relayed: a dashboard plays replies of its own worker's sessions only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any

from flow.monitor import Monitor, MonitorEvent, Subscription

log = logging.getLogger("voicegraph.cluster")

SOCKETIO_CHANNEL = "voicegraph:socketio"
MONITOR_CHANNEL = "voicegraph:monitor"
CONTROL_CHANNEL = "voicegraph:control"
WATCHED_KEY = "voicegraph:watched"
"""Exists while a dashboard somewhere watches (renewed by its worker every `BEAT_S`)."""
BEAT_S = 1.0
WATCHED_TTL_S = 5
"""A dashboard whose worker died stops being counted after this long."""
RELAY_BATCH = 500
"""Most monitoring events in one Redis message."""


def socketio_manager(url: str) -> Any:
    """python-socketio's Redis client manager for the workers sharing `url`."""
    import socketio

    from flow.conversations.redis import import_redis

    import_redis()  # its own error says how to install it
    return socketio.AsyncRedisManager(url, channel=SOCKETIO_CHANNEL)


class Cluster:
    """This worker's link to the others through Redis (monitor relay, Apply, readiness)."""

    def __init__(self, url: str, monitor: Monitor, on_announce: Callable[[], None],
                 on_apply: Callable[[str], tuple[bool, str]]) -> None:
        from flow.conversations.redis import import_redis

        aioredis = import_redis()
        self.url = url
        self.monitor = monitor
        self.worker = monitor.server
        self._on_announce = on_announce
        self._on_apply = on_apply
        self.redis = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self._tasks: list[asyncio.Task] = []
        self._relay: Subscription | None = None
        self._forward: asyncio.Task | None = None
        self._was_observed = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._beat(), name="cluster-beat"),
                       loop.create_task(self._listen(), name="cluster-listen")]

    async def aclose(self) -> None:
        self._stop_relay()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.redis.aclose()

    async def check(self) -> None:
        """Raise if Redis cannot be reached (readiness)."""
        await self.redis.ping()

    async def apply(self, text: str) -> str:
        """Send graph YAML to every worker (this one too); returns the id their `applied` events carry."""
        apply_id = secrets.token_hex(4)
        await self.redis.publish(CONTROL_CHANNEL, json.dumps(
            {"op": "apply", "id": apply_id, "text": text, "from": self.worker}))
        return apply_id

    # ------------------------------------------------------------------ watching

    async def _beat(self) -> None:
        """Keep the `watched` key while our dashboard watches; relay our events while anyone's does."""
        while True:
            try:
                observed = self.monitor.observed
                if observed:
                    await self.redis.set(WATCHED_KEY, self.worker, ex=WATCHED_TTL_S)
                    if not self._was_observed:  # a dashboard just opened here: every worker, announce
                        await self.redis.publish(CONTROL_CHANNEL, json.dumps({"op": "announce"}))
                self._was_observed = observed
                watched = observed or bool(await self.redis.exists(WATCHED_KEY))
                if watched and self._relay is None:
                    self._start_relay()
                elif not watched and self._relay is not None:
                    self._stop_relay()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("redis %s: %s", self.url.split("@")[-1], err)
            await asyncio.sleep(BEAT_S)

    def _start_relay(self) -> None:
        self._relay = self.monitor.subscribe(relay=True)
        self._forward = asyncio.get_running_loop().create_task(self._relay_out(self._relay), name="cluster-relay")
        self._on_announce()  # our live sessions, for the dashboards that just began to watch

    def _stop_relay(self) -> None:
        if self._forward is not None:
            self._forward.cancel()
            self._forward = None
        if self._relay is not None:
            self._relay.close()
            self._relay = None

    async def _relay_out(self, sub: Subscription) -> None:
        while True:
            events = await sub.batch()
            for i in range(0, len(events), RELAY_BATCH):
                rows = [[e.kind, e.session, e.data, e.at_ms, e.server] for e in events[i:i + RELAY_BATCH]]
                try:
                    await self.redis.publish(MONITOR_CHANNEL, json.dumps(rows, default=str))
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # observers lose these events; the sessions never notice
                    log.warning("relaying %d monitoring events failed: %s", len(rows), err)

    # ------------------------------------------------------------------ listening

    async def _listen(self) -> None:
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(MONITOR_CHANNEL, CONTROL_CHANNEL)
                async for message in pubsub.listen():
                    channel = message.get("channel")
                    channel = channel.decode() if isinstance(channel, bytes) else channel
                    try:
                        if channel == MONITOR_CHANNEL:
                            self._relayed(message["data"])
                        elif channel == CONTROL_CHANNEL:
                            await self._control(json.loads(message["data"]))
                    except Exception:
                        log.exception("cluster message on %s not handled", channel)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("redis subscription lost (%s); again in %.0f s", err, BEAT_S)
                await asyncio.sleep(BEAT_S)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _relayed(self, data: bytes | str) -> None:
        if not self.monitor.observed:
            return
        for kind, session, payload, at_ms, server in json.loads(data):
            if server != self.worker:
                self.monitor.inject(MonitorEvent(kind, session, payload, at_ms, server))

    async def _control(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "announce":
            if self._relay is not None:
                self._on_announce()
        elif op == "apply" and isinstance(message.get("text"), str):
            ok, said = self._on_apply(message["text"])
            self.monitor.publish("applied", id=message.get("id"), ok=ok, message=said,
                                 by=message.get("from"))
