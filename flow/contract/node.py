"""The node contract: typed ports, pydantic params, and `wire()` that connects observables.

A node type is a class with `inputs`/`outputs` (port name → message type) and a `Params` model;
the runtime builds one instance per session and calls `wire()` once with an observable per
connected input. A node never lets an exception end a stream: failures become `NodeFailed`
messages through `ctx.fail(...)`, because one bad utterance must not kill the session.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict
from reactivex import Observable
from reactivex.disposable import CompositeDisposable
from reactivex.scheduler.eventloop import AsyncIOScheduler
from reactivex.subject import Subject

from flow.contract.messages import NodeFailed
from flow.contract.resources import Resources

log = logging.getLogger("voicegraph.node")


class NoParams(BaseModel):
    """For node types that take no `params:`."""

    model_config = ConfigDict(frozen=True, extra="forbid")


P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class In:
    """An input port: the message type(s) it accepts and whether a graph must connect it."""

    type: type | tuple[type, ...]
    required: bool = True
    doc: str = ""
    control: bool = False
    """A control input (cancellation, delivery, failures): it may be fed from downstream, so the
    graph may loop through it; `voicegraph graph` draws its edges dashed."""

    @property
    def types(self) -> tuple[type, ...]:
        return self.type if isinstance(self.type, tuple) else (self.type,)


def type_names(types: type | tuple[type, ...]) -> str:
    """`AudioChunk` or `TextInput | Transcript`, for error messages."""
    ts = types if isinstance(types, tuple) else (types,)
    return " | ".join(t.__name__ for t in ts)


class SessionContext:
    """What one session's nodes share: ids, the loop's scheduler, resources, failures, tasks.

    It is also the session's control plane: `stale` carries the number of the newest turn that is
    no longer current (after an interrupt or a newer turn), so every node's per-turn work can
    cancel itself without an explicit edge from the interrupt gate.
    """

    def __init__(self, session: str, resources: Resources, loop: asyncio.AbstractEventLoop) -> None:
        self.session = session
        self.resources = resources
        self.settings = resources.settings
        self.loop = loop
        self.scheduler = AsyncIOScheduler(loop=loop)
        self.failures: Subject[NodeFailed] = Subject()
        self.stale: Subject[int] = Subject()
        """Emits n: every turn numbered ≤ n is stale; its in-flight work must be cancelled."""
        self.stale_through = 0
        self.disposables = CompositeDisposable()
        self._tasks: set[asyncio.Task] = set()
        self.closed = False
        self.counters: dict[str, dict[str, int]] = {}
        self.probe = resources.monitor.probe(session)
        """This session's side of the monitoring channel (events for the dashboard)."""
        self.metrics: dict[int, dict[str, float]] = {}
        """Per turn: wall-clock ms of each stage (speech_end, transcript, first_token, …)."""
        self.delivered: dict[int, list[str]] = {}
        """Per turn: the reply pieces actually sent to the client (what the user heard)."""
        self.completed: set[int] = set()
        """Turns whose whole reply was sent (`ai-response`, or the final piece)."""
        self._closers: list[Callable[[], Coroutine[Any, Any, Any]]] = []

    def fail(self, node: str, code: str, message: str, turn: int | None = None) -> None:
        """Report a failure as a message: it becomes an `error` event, the session goes on."""
        log.warning("session %s node %s: %s: %s", self.session, node, code, message)
        self.count(node, "errors")
        self.failures.on_next(NodeFailed(self.session, code, message, node, turn))

    def mark_stale(self, through_turn: int) -> None:
        """Make every turn ≤ `through_turn` stale (the interrupt gate calls this)."""
        if through_turn > self.stale_through:
            self.stale_through = through_turn
            self.stale.on_next(through_turn)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task:
        """Start a task owned by the session: cancelled when it closes, errors logged."""
        task = self.loop.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("session %s task %s failed", self.session, task.get_name(),
                      exc_info=task.exception())

    def mark(self, turn: int, stage: str, at_ms: float | None = None) -> None:
        """Record when `stage` of `turn` happened (first time only)."""
        stages = self.metrics.setdefault(turn, {})
        if stage not in stages:
            stages[stage] = at_ms if at_ms is not None else time.time() * 1000
            self.probe.publish("stage", turn=turn, stage=stage, at_ms=stages[stage])
        while len(self.metrics) > 50:  # bounded: only recent turns matter
            del self.metrics[min(self.metrics)]

    def on_close(self, closer: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Await `closer()` when the session closes (e.g. to kill a decoder subprocess)."""
        self._closers.append(closer)

    @property
    def task_count(self) -> int:
        return len(self._tasks)

    def count(self, node: str, what: str, n: int = 1) -> None:
        """Per-node counters (messages in/out, errors) for /health and the dashboard."""
        c = self.counters.setdefault(node, {})
        c[what] = c.get(what, 0) + n

    async def aclose(self) -> None:
        """Dispose every subscription and cancel (and await) every task of the session."""
        if self.closed:
            return
        self.closed = True
        self.disposables.dispose()
        for closer in self._closers:
            try:
                await closer()
            except Exception:
                log.exception("session %s: closing failed", self.session)
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.failures.on_completed()
        self.stale.on_completed()


class Node(Generic[P]):
    """Base of every node type. Subclasses set `inputs`, `outputs`, `Params` and `wire()`."""

    type_name: ClassVar[str] = ""
    inputs: ClassVar[dict[str, In]] = {}
    outputs: ClassVar[dict[str, type]] = {}
    Params: ClassVar[type[BaseModel]] = NoParams

    def __init__(self, node_id: str, params: P, ctx: SessionContext) -> None:
        self.id = node_id
        self.params = params
        self.ctx = ctx

    def wire(self, **inputs: Observable[Any]) -> dict[str, Observable[Any]]:
        """Connect operators: inputs (only the connected ones) in, an observable per output out."""
        raise NotImplementedError

    @classmethod
    def check_params(cls, params: BaseModel, resources: Resources) -> None:
        """Check, before any audio flows, that these params can work here (e.g. a provider is
        installed and configured); raise ValueError with a message for the user otherwise."""

    async def preload(self) -> None:
        """Load now what this node's first turn would otherwise wait for (a model, a worker
        process). Called once per server on a warm-up instance, off the audio path."""

    @classmethod
    def provider_name(cls, params: BaseModel, resources: Resources) -> str | None:
        """The provider these params resolve to (`auto` made concrete), for /health and logs."""
        return None

    # helpers for subclasses ---------------------------------------------------------------

    def fail(self, code: str, message: str, turn: int | None = None) -> None:
        self.ctx.fail(self.id, code, message, turn)

    def route(self, inputs: dict[str, Observable[Any]], handlers: dict[str, Callable[[Any], None]]) -> None:
        """Subscribe each connected input to its handler, on the loop's scheduler, for the
        session's lifetime; a handler that raises becomes a `NodeFailed`, not a dead stream."""
        for port, source in inputs.items():
            self.ctx.disposables.add(
                source.subscribe(on_next=guarded(self, handlers[port]), scheduler=self.ctx.scheduler))


def guarded(node: Node[Any], fn: Callable[[Any], None], code: str = "internal") -> Callable[[Any], None]:
    """Wrap an `on_next` so an exception becomes a `NodeFailed` instead of killing the stream."""

    def on_next(msg: Any) -> None:
        try:
            fn(msg)
        except Exception as err:
            log.exception("node %s failed on %s", node.id, type(msg).__name__)
            node.fail(code, f"{node.id}: {type(err).__name__}: {err}", getattr(msg, "turn", None))

    return on_next
