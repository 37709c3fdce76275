"""Node types by name: the entry-point group `voicegraph.nodes`, plus types registered in code.

The built-in nodes are published through the same entry-point group as third-party ones (see
pyproject.toml), so an installed package adds a node type usable from YAML with no code change
here. Entry points are loaded lazily: a graph that never uses a heavy node never imports it.
"""

from __future__ import annotations

import logging
from importlib.metadata import Distribution, entry_points
from typing import Any

from flow.contract.node import Node

GROUP = "voicegraph.nodes"
log = logging.getLogger("voicegraph.registry")

_registered: dict[str, type[Node[Any]]] = {}


def register(name: str):
    """Class decorator: make a node type available under `name` (tests, in-process plugins)."""

    def deco(cls: type[Node[Any]]) -> type[Node[Any]]:
        cls.type_name = name
        _registered[name] = cls
        return cls

    return deco


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def names() -> list[str]:
    """Every known node type name, sorted."""
    return sorted(set(_registered) | set(_entry_points()))


def get(name: str) -> type[Node[Any]]:
    """The node class for `name`; KeyError if no such type is registered or installed."""
    if name in _registered:
        return _registered[name]
    ep = _entry_points().get(name)
    if ep is None:
        raise KeyError(name)
    cls = ep.load()
    if not (isinstance(cls, type) and issubclass(cls, Node)):
        raise TypeError(f"entry point {GROUP}:{name} ({ep.value}) is not a voicegraph Node class")
    cls.type_name = name
    _registered[name] = cls
    return cls


def registered(name: str) -> type[Node[Any]] | None:
    """The class registered (or already loaded) under `name`, without loading anything."""
    return _registered.get(name)


def distribution(name: str) -> Distribution | None:
    """The installed distribution whose `voicegraph.nodes` entry point provides `name` (None for a
    type registered in code only)."""
    ep = _entry_points().get(name)
    return getattr(ep, "dist", None) if ep is not None else None


def source(name: str) -> str:
    """Where `name` comes from, without loading it: `module:Class`."""
    ep = _entry_points().get(name)
    if ep is not None:
        return ep.value
    cls = _registered.get(name)
    return f"{cls.__module__}:{cls.__qualname__}" if cls is not None else "?"
