"""The node reference: every installed node type, its ports and params, read from the code itself.

`voicegraph nodes`, `docs/nodes.md` and the dashboard all render what `reference()` returns, so
nothing about a node type is written twice: ports come from `inputs`/`outputs`/`output_docs`,
params from the pydantic `Params` model (types, defaults, bounds, and the field descriptions,
which the built-in models take from their attribute docstrings), and the package that provides a
type from its `voicegraph.nodes` entry point. Pure: it loads node classes, nothing else.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import types
from dataclasses import dataclass, field
from importlib.metadata import packages_distributions
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel
from pydantic_core import PydanticUndefined, to_jsonable_python

from flow.contract.node import ERROR_PORT, In, Node
from flow.graph import registry
from flow.graph.spec import CLIENT, CLIENT_INPUTS, CLIENT_OUTPUT_DOCS, CLIENT_OUTPUTS

BUILTIN_PACKAGE = "voicegraph"


@dataclass(frozen=True)
class PortRef:
    name: str
    types: tuple[str, ...]
    required: bool = False
    control: bool = False
    doc: str = ""


@dataclass(frozen=True)
class ParamRef:
    name: str
    type: str
    default: Any = None
    required: bool = False
    constraints: dict[str, Any] = field(default_factory=dict)
    """`ge`, `gt`, `le`, `lt`, `min_length`, `max_length`, `multiple_of`, `choices`."""
    doc: str = ""


@dataclass(frozen=True)
class NodeTypeRef:
    name: str
    package: str
    """The distribution that provides it (`voicegraph` for the built-ins), `name version`."""
    source: str
    """`module:Class`."""
    doc: str = ""
    about: str = ""
    """The rest of the module's docstring (the `In:`/`Out:` lines left out: the tables say that)."""
    inputs: tuple[PortRef, ...] = ()
    outputs: tuple[PortRef, ...] = ()
    params: tuple[ParamRef, ...] = ()
    error: str = ""
    """Why the type could not be loaded (then only `name` and `package` are known)."""


@dataclass(frozen=True)
class MessageRef:
    name: str
    doc: str
    fields: tuple[str, ...]


@dataclass(frozen=True)
class Reference:
    nodes: tuple[NodeTypeRef, ...]
    client: NodeTypeRef
    messages: tuple[MessageRef, ...]

    def to_json(self) -> dict[str, Any]:
        return to_jsonable_python(dataclasses.asdict(self))


def reference(names: list[str] | None = None, builtin_only: bool = False) -> Reference:
    """The reference of `names` (default: every installed type; `client` is always in `client`);
    KeyError naming an unknown one.

    `builtin_only` keeps the types voicegraph itself provides (what `docs/nodes.md` documents,
    whatever plugins this machine has)."""
    known = registry.names()
    for n in names or ():
        if n not in known and n != CLIENT:
            raise KeyError(n)
    chosen = [n for n in names if n != CLIENT] if names else known
    if builtin_only:  # published by voicegraph's own entry points (not a type a test registered in code)
        chosen = [n for n in chosen if _distribution_name(n) == BUILTIN_PACKAGE]
    refs = [node_ref(n) for n in chosen]
    classes = [registry.get(r.name) for r in refs if not r.error]
    carried = [t for c in classes for port in c.inputs.values() for t in port.types]
    carried += [t for c in classes for t in c.output_ports().values()]
    carried += [t for port in CLIENT_INPUTS.values() for t in port.types] + list(CLIENT_OUTPUTS.values())
    return Reference(tuple(refs), client_ref(), _messages(carried))


def node_ref(name: str) -> NodeTypeRef:
    package = _package(name)
    try:
        cls = registry.get(name)
    except Exception as err:
        return NodeTypeRef(name, package, registry.source(name), error=f"{type(err).__name__}: {err}")
    return NodeTypeRef(
        name, package, f"{cls.__module__}:{cls.__qualname__}",
        doc=inspect.getdoc(cls) or "", about=_about(sys.modules.get(cls.__module__)),
        inputs=tuple(_in(p, spec) for p, spec in cls.inputs.items()),
        outputs=tuple(_out(cls, p, t) for p, t in cls.output_ports().items()),
        params=tuple(params_of(cls.Params)),
    )


def client_ref() -> NodeTypeRef:
    """The reserved `client` node: the Socket.IO connection (its outputs are what the client sends)."""
    return NodeTypeRef(
        CLIENT, BUILTIN_PACKAGE, "flow.graph.spec",
        doc="The Socket.IO connection. Its outputs are the client's events; its inputs are sent to the client.",
        inputs=tuple(_in(p, spec) for p, spec in CLIENT_INPUTS.items()),
        outputs=tuple(PortRef(p, (t.__name__,), doc=CLIENT_OUTPUT_DOCS.get(p, "")) for p, t in CLIENT_OUTPUTS.items()),
    )


def params_of(model: type[BaseModel]) -> list[ParamRef]:
    out = []
    for name, info in model.model_fields.items():
        required = info.is_required()
        if required:
            default = None
        elif info.default_factory is not None:
            default = info.default_factory()  # type: ignore[call-arg]
        else:
            default = info.default
        constraints: dict[str, Any] = {}
        for m in info.metadata:
            for key in ("ge", "gt", "le", "lt", "min_length", "max_length", "multiple_of"):
                if isinstance(m, at.BaseMetadata) and getattr(m, key, None) is not None:
                    constraints[key] = getattr(m, key)
        choices = _choices(info.annotation)
        if choices:
            constraints["choices"] = choices
        out.append(ParamRef(name, type_text(info.annotation), None if default is PydanticUndefined else default,
                            required, constraints, (info.description or "").strip()))
    return out


def type_text(ann: Any) -> str:
    """`int`, `float | None`, `'energy' | 'webrtc'`, `dict[str, str]`: how a YAML author reads it."""
    origin = get_origin(ann)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(ann))
    if origin in (Union, types.UnionType):
        return " | ".join(type_text(a) for a in get_args(ann))
    if ann is type(None):
        return "None"
    if origin is not None:
        args = ", ".join(type_text(a) for a in get_args(ann))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return getattr(ann, "__name__", str(ann))


def _choices(ann: Any) -> list[Any]:
    if get_origin(ann) is Literal:
        return list(get_args(ann))
    if get_origin(ann) in (Union, types.UnionType):
        return [c for a in get_args(ann) for c in _choices(a)]
    return []


def _in(name: str, spec: In) -> PortRef:
    return PortRef(name, tuple(t.__name__ for t in spec.types), spec.required, spec.control, spec.doc)


def _out(cls: type[Node[Any]], name: str, t: type) -> PortRef:
    doc = cls.output_docs.get(name, "")
    if name == ERROR_PORT and not doc:
        doc = "failures, as messages (every node has it); wire it to client.error"
    return PortRef(name, (t.__name__,), control=name == ERROR_PORT, doc=doc)


def _package(name: str) -> str:
    """`dist version` of the entry point for `name`, else of the module a registered class is in."""
    dist = registry.distribution(name)
    if dist is None:
        cls = registry.registered(name)
        top = cls.__module__.split(".")[0] if cls is not None else ""
        names = packages_distributions().get(top, [])
        if not names:
            return f"registered in code ({cls.__module__ if cls else '?'})"
        from importlib.metadata import distribution

        dist = distribution(names[0])
    return f"{dist.metadata['Name']} {dist.version}"


def _distribution_name(name: str) -> str | None:
    dist = registry.distribution(name)
    return dist.metadata["Name"] if dist is not None else None


_IN_OUT = re.compile(r"^(In|Out):")


def _about(module: Any) -> str:
    """A module docstring without its first line and its `In:`/`Out:` block."""
    doc = inspect.getdoc(module) if module is not None else None
    if not doc:
        return ""
    kept: list[str] = []
    in_block = False
    for line in doc.splitlines()[1:]:
        if _IN_OUT.match(line):
            in_block = True
            continue
        if in_block and line.startswith(" "):
            continue
        in_block = False
        kept.append(line)
    return "\n".join(kept).strip()


def _messages(carried: list[type]) -> tuple[MessageRef, ...]:
    """Every message type in `carried` (the ports' types), with its docstring and fields."""
    seen: dict[str, MessageRef] = {}
    for cls in carried:
        if cls.__name__ in seen:
            continue
        doc = (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " ")
        fields = tuple(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else ()
        seen[cls.__name__] = MessageRef(cls.__name__, doc, fields)
    return tuple(sorted(seen.values(), key=lambda m: m.name))
