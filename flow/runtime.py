"""Instantiate a validated graph for one session: nodes built, observables wired, sinks exposed.

Nodes are wired in topological order, so each node receives observables of upstream outputs that
already exist. Every output is shared (`share()`), so a port read by two nodes does its work once.
The client node's outputs are Subjects the Socket.IO handlers push into; its inputs are merged
into one observable per port that the session subscribes to and sends to the client.
"""

from __future__ import annotations

import logging
from typing import Any

import reactivex
from reactivex import Observable
from reactivex import operators as ops
from reactivex.subject import Subject

from flow.graph_spec import CLIENT, CLIENT_INPUTS, CLIENT_OUTPUTS, GraphSpec
from flow.node import Node, SessionContext

log = logging.getLogger("voicegraph.runtime")


class GraphInstance:
    """One session's running graph. Push client events into `sources`; read `sinks`."""

    def __init__(self, spec: GraphSpec, ctx: SessionContext) -> None:
        self.spec = spec
        self.ctx = ctx
        self.sources: dict[str, Subject[Any]] = {port: Subject() for port in CLIENT_OUTPUTS}
        self.nodes: dict[str, Node[Any]] = {}
        outputs: dict[tuple[str, str], Observable[Any]] = {
            (CLIENT, port): subject for port, subject in self.sources.items()
        }
        for node_id in spec.order:
            node_spec = spec.nodes[node_id]
            node = node_spec.cls(node_id, node_spec.params, ctx)
            self.nodes[node_id] = node
            inputs = {
                port: self._counted(node_id, f"in.{port}", self._merge(outputs, node_id, port))
                for port in node.inputs
                if spec.edges_into(node_id) and any(e.dst_port == port for e in spec.edges_into(node_id))
            }
            produced = node.wire(**inputs)
            for port in node.outputs:
                obs = produced.get(port)
                if obs is None:
                    obs = reactivex.empty()
                outputs[(node_id, port)] = obs.pipe(ops.share())
        self.sinks: dict[str, Observable[Any]] = {
            port: self._merge(outputs, CLIENT, port)
            for port in CLIENT_INPUTS
            if any(e.dst_port == port for e in spec.edges_into(CLIENT))
        }

    def _merge(
        self, outputs: dict[tuple[str, str], Observable[Any]], node_id: str, port: str
    ) -> Observable[Any]:
        sources = [outputs[(e.src, e.src_port)] for e in self.spec.edges_into(node_id)
                   if e.dst_port == port]
        return sources[0] if len(sources) == 1 else reactivex.merge(*sources)

    def _counted(self, node_id: str, what: str, source: Observable[Any]) -> Observable[Any]:
        ctx = self.ctx

        def count(_: Any) -> None:
            ctx.count(node_id, what)

        return source.pipe(ops.do_action(on_next=count))
