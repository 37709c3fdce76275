"""Instantiate a validated graph for one session: nodes built, observables wired, sinks exposed.

A data input is an observable over its edges' sources that counts what arrives (for /health and
the dashboard) and connects when its node subscribes to it. Nodes are wired in topological order
of their data inputs, so a data edge's source exists when its destination is wired. Edges into
control inputs (`In(control=True)`: cancellation, delivery, failures) may come from downstream:
they feed a Subject that is connected once every node is wired, which is how
`gate.cancel -> llm.cancel` loops back without a cycle in the data flow. Outputs that are not
Subjects are shared (`share()`), so a port read by two nodes does its work once. The client
node's outputs are Subjects the Socket.IO session pushes into; its inputs are one Subject per
port that the session subscribes to.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import reactivex
from reactivex import Observable
from reactivex import operators as ops
from reactivex.disposable import CompositeDisposable
from reactivex.subject import Subject

from flow.contract.node import Node, SessionContext
from flow.graph.spec import CLIENT, CLIENT_INPUTS, CLIENT_OUTPUTS, EdgeSpec, GraphSpec
from flow.tap import TapPoint

log = logging.getLogger("voicegraph.runtime")


class _InputPort(Observable[Any]):
    """A data input: subscribing to it subscribes to each of its edges' sources, counting what
    arrives (for /health and the dashboard) and passing it through the session's tap. Nothing is
    connected before the node subscribes, so upstream outputs reach their consumers in the order
    the consumers subscribed (a node that answers synchronously never overtakes one wired after it
    on the same upstream message)."""

    def __init__(self, sources: list[tuple[int, Observable[Any]]], count: Callable[[], None],
                 tap: TapPoint) -> None:
        super().__init__()
        self._sources = sources
        self._count = count
        self._tap = tap

    def _subscribe_core(self, observer: Any, scheduler: Any = None) -> Any:
        return CompositeDisposable(*(
            source.subscribe(_edge_feed(edge, self._tap, observer.on_next, self._count), observer.on_error,
                             scheduler=scheduler)
            for edge, source in self._sources))


def _edge_feed(edge: int, tap: TapPoint, on_next: Callable[[Any], None],
               count: Callable[[], None] | None = None) -> Callable[[Any], None]:
    """What edge number `edge` does with a message: count it, show it to the tap if someone
    watches this session (one attribute read otherwise), hand it on."""
    deliver = tap.deliver

    def feed(msg: Any) -> None:
        if count is not None:
            count()
        if tap.on:
            deliver(edge, msg, on_next)
        else:
            on_next(msg)

    return feed


class GraphInstance:
    """One session's running graph. Push client events into `sources`; read `sinks`."""

    def __init__(self, spec: GraphSpec, ctx: SessionContext) -> None:
        self.spec = spec
        self.ctx = ctx
        self._edge_index = {id(e): i for i, e in enumerate(spec.edges)}
        self.tap = ctx.probe.monitor.tap.attach(ctx.session, list(spec.edges))
        """What flowed on each edge, while someone watches this session (`flow.tap`)."""
        ctx.on_close(self._detach_tap)
        self.sources: dict[str, Subject[Any]] = {port: Subject() for port in CLIENT_OUTPUTS}
        self.nodes: dict[str, Node[Any]] = {}
        self.sinks: dict[str, Subject[Any]] = {
            port: Subject() for port in CLIENT_INPUTS
            if any(e.dst_port == port for e in spec.edges_into(CLIENT))
        }
        self.outputs: dict[tuple[str, str], Observable[Any]] = {
            (CLIENT, port): subject for port, subject in self.sources.items()
        }
        late: list[tuple[EdgeSpec, Subject[Any]]] = []
        """Edges into control inputs, connected after every node is wired."""
        for node_id in spec.order:
            node_spec = spec.nodes[node_id]
            node = node_spec.cls(node_id, node_spec.params, ctx)
            self.nodes[node_id] = node
            inputs: dict[str, Observable[Any]] = {}
            for port, declared in node.inputs.items():
                edges = [e for e in spec.edges_into(node_id) if e.dst_port == port]
                if not edges:
                    continue
                if declared.control:
                    inputs[port] = port_in = Subject()
                    late.extend((edge, port_in) for edge in edges)
                else:
                    inputs[port] = _InputPort([(self._edge_index[id(e)], self.outputs[(e.src, e.src_port)])
                                               for e in edges], self._counter(node_id, port), self.tap)
            produced = node.wire(**inputs)
            produced.setdefault("error", node.errors)
            for port in node.output_ports():
                obs = produced.get(port)
                if obs is None:
                    obs = reactivex.empty()
                elif not isinstance(obs, Subject):  # a Subject is multicast already: no extra hop
                    obs = obs.pipe(ops.share())
                self.outputs[(node_id, port)] = obs
                self._feed_client(node_id, port, obs)
        for edge, port_in in late:
            self._connect(edge, port_in)
        for edge in spec.edges_into(CLIENT):  # the client's own outputs looping back (delivered)
            if edge.src == CLIENT:
                self._subscribe(edge, self.sources[edge.src_port], self.sinks[edge.dst_port])

    async def _detach_tap(self) -> None:
        self.ctx.probe.monitor.tap.detach(self.tap)

    def _counter(self, node_id: str, port: str) -> Callable[[], None]:
        ctx, what = self.ctx, f"in.{port}"

        def count() -> None:
            ctx.count(node_id, what)

        return count

    def _connect(self, edge: EdgeSpec, port_in: Subject[Any]) -> None:
        """Feed `edge`'s source into a control input's Subject, counting what arrives."""
        feed = _edge_feed(self._edge_index[id(edge)], self.tap, port_in.on_next,
                          self._counter(edge.dst, edge.dst_port))
        self.ctx.disposables.add(self.outputs[(edge.src, edge.src_port)].subscribe(
            on_next=feed, on_error=port_in.on_error, scheduler=self.ctx.scheduler))

    def _feed_client(self, node_id: str, port: str, source: Observable[Any]) -> None:
        """Subscribe the client's sinks to this output before any downstream node does, so the
        client hears of a message (e.g. `speech-result`) before what other nodes make of it."""
        for e in self.spec.edges:
            if e.src == node_id and e.src_port == port and e.dst == CLIENT:
                self._subscribe(e, source, self.sinks[e.dst_port])

    def _subscribe(self, edge: EdgeSpec, source: Observable[Any], sink: Subject[Any]) -> None:
        self.ctx.disposables.add(source.subscribe(
            on_next=_edge_feed(self._edge_index[id(edge)], self.tap, sink.on_next),
            on_error=sink.on_error, scheduler=self.ctx.scheduler))
