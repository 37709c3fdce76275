"""Where the dashboard's graph editor saves a graph, and how: never over a bundled graph.

The graphs directory is `VOICEGRAPH_GRAPHS_DIR` from the server's environment; else the directory
of the served graph file when that is the user's own; else `./graphs`. A name is a plain file
stem (letters, digits, `_`, `-`, `.`); an existing file is replaced only when asked, and a graph
that ships with voicegraph (`graphs/*.yaml` of the package) never is, so a bundled graph cannot
change under every other user of the install.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class SaveError(Exception):
    """Why a graph was not saved (shown to the user as is)."""


def bundled_dir() -> Path:
    return Path(str(files("graphs"))).resolve()


def graphs_dir(env: Mapping[str, str], served: str) -> Path:
    """Where "Save as…" writes (see the module's docstring)."""
    if env.get("VOICEGRAPH_GRAPHS_DIR"):
        return Path(env["VOICEGRAPH_GRAPHS_DIR"])
    path = Path(served)
    if path.is_file() and not path.resolve().is_relative_to(bundled_dir()):
        return path.parent
    return Path("graphs")


def target(directory: Path, name: str) -> Path:
    stem = name.strip().removesuffix(".yaml").removesuffix(".yml")
    if not _NAME.fullmatch(stem):
        raise SaveError(f"{name!r} is not a graph file name: letters, digits, '_', '-' and '.', at most 64")
    return directory / f"{stem}.yaml"


def save_graph(text: str, directory: Path, name: str, replace: bool = False) -> Path:
    """Write `text` as `<directory>/<name>.yaml` (atomically); SaveError if it may not be."""
    path = target(directory, name)
    if path.exists():
        if path.resolve().parent == bundled_dir():
            raise SaveError(f"{path.name} is a graph bundled with voicegraph: save it under another name")
        if not replace:
            raise SaveError(f"{path} exists: tick 'replace' to overwrite it")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.stem}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text if text.endswith("\n") else text + "\n")
        os.replace(tmp, path)
    except OSError as err:
        raise SaveError(f"cannot write {path}: {err.strerror or err}") from err
    return path
