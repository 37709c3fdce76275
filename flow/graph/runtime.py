"""Instantiate a validated graph for one session: nodes built, observables wired, sinks exposed.

Nodes are wired in topological order of their data inputs, so each node receives observables of
upstream outputs that already exist. Control inputs (`In(control=True)`: cancellation, delivery,
failures) may be fed from downstream; they get a Subject that is connected once every node is
wired, which is how `gate.cancel -> llm.cancel` loops back without a cycle in the data flow.
Outputs that are not Subjects are shared (`share()`), so a port read by two nodes does its work
once. The client node's outputs are Subjects the Socket.IO session pushes into; its inputs are
merged into one Subject per port that the session subscribes to and sends to the client.
"""

from __future__ import annotations

import logging
from typing import Any

import reactivex
from reactivex import Observable
from reactivex import operators as ops
from reactivex.subject import Subject

from flow.contract.node import Node, SessionContext
from flow.graph.spec import CLIENT, CLIENT_INPUTS, CLIENT_OUTPUTS, EdgeSpec, GraphSpec

log = logging.getLogger("voicegraph.runtime")


class GraphInstance:
    """One session's running graph. Push client events into `sources`; read `sinks`."""

    def __init__(self, spec: GraphSpec, ctx: SessionContext) -> None:
        self.spec = spec
        self.ctx = ctx
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
                    proxy: Subject[Any] = Subject()
                    late.extend((e, proxy) for e in edges)
                    source: Observable[Any] = proxy
                else:
                    source = self._merge([self.outputs[(e.src, e.src_port)] for e in edges])
                inputs[port] = self._counted(node_id, f"in.{port}", source)
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
        for edge, proxy in late:
            self._subscribe(self.outputs[(edge.src, edge.src_port)], proxy)
        for edge in spec.edges_into(CLIENT):  # the client's own outputs looping back (delivered)
            if edge.src == CLIENT:
                self._subscribe(self.sources[edge.src_port], self.sinks[edge.dst_port])

    def _feed_client(self, node_id: str, port: str, source: Observable[Any]) -> None:
        """Subscribe the client's sinks to this output before any downstream node does, so the
        client hears of a message (e.g. `speech-result`) before what other nodes make of it."""
        for e in self.spec.edges:
            if e.src == node_id and e.src_port == port and e.dst == CLIENT:
                self._subscribe(source, self.sinks[e.dst_port])

    def _subscribe(self, source: Observable[Any], sink: Subject[Any]) -> None:
        self.ctx.disposables.add(source.subscribe(
            on_next=sink.on_next, on_error=sink.on_error, scheduler=self.ctx.scheduler))

    @staticmethod
    def _merge(sources: list[Observable[Any]]) -> Observable[Any]:
        return sources[0] if len(sources) == 1 else reactivex.merge(*sources)

    def _counted(self, node_id: str, what: str, source: Observable[Any]) -> Observable[Any]:
        ctx = self.ctx

        def count(_: Any) -> None:
            ctx.count(node_id, what)

        return source.pipe(ops.do_action(on_next=count))
