"""The node contract: typed ports, pydantic params, and `wire()` that connects observables.

A node type is a class with `inputs`/`outputs` (port name → message type) and a `Params` model;
the runtime builds one instance per session and calls `wire()` once with an observable per
connected input. A node never lets an exception end a stream: failures become `NodeFailed`
messages on the node's `error` output (every node has one), because one bad utterance must not
kill the session, and a graph shows by its edges who hears of a failure.

Nothing travels between nodes except on edges. `SessionContext` holds what is the session's own
(its loop, tasks, counters, the monitoring probe), never a channel one node uses to reach another:
cancellation is a `Cancel` message on the interrupt gate's `cancel` output, delivery a `Delivered`
message on the client's `delivered` output.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict
from reactivex import Observable
from reactivex.disposable import CompositeDisposable
from reactivex.scheduler.eventloop import AsyncIOScheduler
from reactivex.subject import Subject

from flow.contract.messages import Cancel, NodeFailed
from flow.contract.resources import Resources
from flow.conversations.conversation import Conversation
from flow.redact import redact

log = logging.getLogger("voicegraph.node")


class NoParams(BaseModel):
    """For node types that take no `params:`."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


P = TypeVar("P", bound=BaseModel)

ERROR_PORT = "error"
"""The output every node has: its failures as `NodeFailed` messages."""
CANCEL_PORT = "cancel"
"""The input a node doing per-turn work declares: `Cancel` messages stop that work."""


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


def cancel_input() -> In:
    """The `cancel` input of a node with per-turn work; wire the interrupt gate's `cancel` to it."""
    return In(Cancel, required=False, control=True, doc="Cancel: stop the work of stale turns")


def type_names(types: type | tuple[type, ...]) -> str:
    """`AudioChunk` or `TextInput | Transcript`, for error messages."""
    ts = types if isinstance(types, tuple) else (types,)
    return " | ".join(t.__name__ for t in ts)


class SessionContext:
    """What belongs to one session itself: ids, its conversation, the loop's scheduler, resources,
    tasks, counters.

    Nodes never talk to each other through it (that is what edges are for); it is where a node
    finds the loop, the shared providers, a place to start tasks that die with the session, and
    the session's side of the monitoring channel.
    """

    def __init__(self, session: str, resources: Resources, loop: asyncio.AbstractEventLoop,
                 conversation: Conversation | None = None) -> None:
        self.session = session
        self.conversation = conversation
        """The conversation this session continues or began (its id, its earlier history, where it
        is saved); None when the session has none to keep (a warm-up, a test's bare context). The
        responder, which owns history, is the only node that reads it."""
        self.resources = resources
        self.settings = resources.settings
        self.loop = loop
        self.scheduler = AsyncIOScheduler(loop=loop)
        """For Rx time operators (`debounce`, `timer`…): without it they run on threads."""
        self.disposables = CompositeDisposable()
        self._tasks: set[asyncio.Task] = set()
        self.closed = False
        self.counters: dict[str, dict[str, int]] = {}
        self.probe = resources.monitor.probe(session)
        """This session's side of the monitoring channel (events for the dashboard)."""
        self.metrics = resources.metrics
        """The server's Prometheus metrics (`flow.metrics`): nodes only increment and observe."""
        self._turn_watchers: list[Callable[[dict[str, Any], str], None]] = []
        self._closers: list[Callable[[], Coroutine[Any, Any, Any]]] = []

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

    def mark(self, turn: int, stage: str, at_ms: float) -> None:
        """Tell observers (the dashboard) when `stage` of `turn` happened. Only observers: a node
        that needs a turn's timing gets it on the turn's messages (`marks`)."""
        if self.probe.monitor.watched:
            self.probe.publish("stage", turn=turn, stage=stage, at_ms=at_ms)

    def turn_ended(self, metrics: dict[str, Any], outcome: str, turn: int | None = None) -> None:
        """A turn is over (`answered`, `cancelled`, `failed`), with its `turn-metrics` payload:
        counted for Prometheus, told to whoever records the session and to the dashboard (which
        shows `interrupted` only for a turn whose reply was really cut). Observation only."""
        self.metrics.turn_ended(metrics, outcome)
        if turn is not None and self.probe.monitor.watched:
            self.probe.publish("turn", turn=turn, outcome=outcome, metrics=metrics)
        for watcher in self._turn_watchers:
            watcher(metrics, outcome)

    def watch_turns(self, watcher: Callable[[dict[str, Any], str], None]) -> None:
        """Call `watcher(metrics, outcome)` for every turn that ends (the session recording)."""
        self._turn_watchers.append(watcher)

    def provider_call(self, kind: str, provider: str) -> contextlib.AbstractContextManager[None]:
        """`with ctx.provider_call("stt", name):` times the provider call inside (not if cancelled)."""
        return self.metrics.provider_call(kind, provider)

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


class Node(Generic[P]):
    """Base of every node type. Subclasses set `inputs`, `outputs`, `Params` and `wire()`."""

    type_name: ClassVar[str] = ""
    inputs: ClassVar[dict[str, In]] = {}
    outputs: ClassVar[dict[str, type]] = {}
    output_docs: ClassVar[dict[str, str]] = {}
    """What each output carries and where it is usually wired (`voicegraph nodes` shows it)."""
    Params: ClassVar[type[BaseModel]] = NoParams

    def __init__(self, node_id: str, params: P, ctx: SessionContext) -> None:
        self.id = node_id
        self.params = params
        self.ctx = ctx
        self.errors: Subject[NodeFailed] = Subject()
        """The `error` output: this node's failures, as messages."""

    @classmethod
    def output_ports(cls) -> dict[str, type]:
        """Declared outputs plus `error` (NodeFailed), which every node has."""
        return {**cls.outputs, ERROR_PORT: NodeFailed}

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
        """Report a failure on the `error` output (and the log); the session goes on. Whatever looks
        like a credential (a provider's body may echo the request's headers) is redacted first."""
        message = redact(message, self.ctx.settings.env)
        log.warning("session %s node %s: %s: %s", self.ctx.session, self.id, code, message)
        self.ctx.count(self.id, "errors")
        self.errors.on_next(NodeFailed(self.ctx.session, code, message, self.id, turn))

    def route(self, inputs: dict[str, Observable[Any]], handlers: dict[str, Callable[[Any], None]]) -> None:
        """Subscribe each connected input to its handler for the session's lifetime; a handler that
        raises becomes a `NodeFailed` on `error`, not a dead stream. Delivery is synchronous, on
        the emitter's stack (Subjects do not hop through the scheduler); the loop's scheduler
        passed here only serves time-based operators, which would otherwise start threads."""
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
