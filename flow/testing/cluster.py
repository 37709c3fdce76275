"""A real cluster for tests and the benchmark: redis-server, HAProxy with the shipped
`deploy/haproxy.cfg`, `voicegraph serve` workers — each started on free loopback ports and stopped
by whoever started it."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


TEXT_ONLY = """
version: 1
extends: default
name: text_only
remove_nodes: [tts]
edges:
  - llm.reply -> gate.response
"""
"""A text-only graph (the LLM's reply is the response, no speech): cluster tests and the cluster
bench check conversations, not audio."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not listen on {port} within {timeout}s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """Debian's `redis-server` on a free loopback port, in memory only; yields `redis://…/0`."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise AssertionError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="vg-redis-") as tmp:
        proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", tmp, "--loglevel", "warning"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            _wait_port(port, proc, "redis-server")
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            _stop(proc)


def haproxy_config(backends: Sequence[int], port: int, text: str | None = None) -> str:
    """`deploy/haproxy.cfg` listening on `port`, its `server` lines for `backends` (loopback ports)."""
    text = text if text is not None else (DEPLOY / "haproxy.cfg").read_text()
    text = re.sub(r"bind 127\.0\.0\.1:\d+", f"bind 127.0.0.1:{port}", text)
    lines = [line for line in text.splitlines() if not line.strip().startswith("server ")]
    lines += [f"    server w{i} 127.0.0.1:{p} cookie w{i}" for i, p in enumerate(backends, 1)]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _listening(cmd: list[str], port: int, what: str) -> Iterator[str]:
    """Run a balancer's command until the block ends; yields its URL once `port` accepts."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_port(port, proc, what)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


@contextlib.contextmanager
def haproxy(backends: Sequence[int]) -> Iterator[str]:
    """Debian's `haproxy` in front of `backends` with the shipped config; yields its URL."""
    exe = shutil.which("haproxy")
    if exe is None:
        raise AssertionError("haproxy is not installed (apt-get install haproxy)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="vg-haproxy-") as tmp:
        cfg = Path(tmp) / "haproxy.cfg"
        cfg.write_text(haproxy_config(backends, port))
        with _listening([exe, "-db", "-f", str(cfg)], port, "haproxy") as url:
            yield url


@contextlib.contextmanager
def workers(n: int, env: dict[str, str], *args: str) -> Iterator[list]:
    """`n` `voicegraph serve` processes (no dashboard unless `args` asks), each named `w1`…`wn`
    (`VOICEGRAPH_WORKER`); yields their `Served` records."""
    from flow.testing.servers import served

    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(served({**env, "VOICEGRAPH_WORKER": f"w{i}"}, *args))
               for i in range(1, n + 1)]


def nginx_config(backends: Sequence[int], port: int, text: str | None = None) -> str:
    """`deploy/nginx.conf` listening on `port`, its upstream `server` lines for `backends`."""
    text = text if text is not None else (DEPLOY / "nginx.conf").read_text()
    text = re.sub(r"listen 127\.0\.0\.1:\d+;", f"listen 127.0.0.1:{port};", text)
    found = list(re.finditer(r"^( *)server 127\.0\.0\.1:\d+([^;]*);\n", text, re.M))
    indent, options = (found[0].group(1), found[0].group(2)) if found else ("        ", "")
    new = "".join(f"{indent}server 127.0.0.1:{p}{options};\n" for p in backends)
    for m in reversed(found):
        text = text[:m.start()] + text[m.end():]
    return text.replace("hash $vg_sticky consistent;\n", "hash $vg_sticky consistent;\n" + new, 1)


@contextlib.contextmanager
def nginx(backends: Sequence[int]) -> Iterator[str]:
    """Debian's `nginx` in front of `backends` with the shipped config; yields its URL."""
    exe = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if exe is None:
        raise AssertionError("nginx is not installed (apt-get install nginx-light)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="vg-nginx-") as tmp:
        Path(tmp).chmod(0o777)  # its workers (user nobody when started as root) write temp files here
        cfg = Path(tmp) / "nginx.conf"
        cfg.write_text(nginx_config(backends, port))
        with _listening([exe, "-p", tmp, "-c", str(cfg), "-e", "stderr"], port, "nginx") as url:
            yield url
