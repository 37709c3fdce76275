"""`voicegraph serve --workers N`: N named workers on consecutive ports, all stopped by one SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from flow.testing.cluster import free_port


def _two_free_ports() -> int:
    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two consecutive free ports")


def _health(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
            return json.loads(r.read())
    except OSError:
        return None


def test_serve_workers_starts_consecutive_named_workers_and_stops_them() -> None:
    port = _two_free_ports()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "VOICEGRAPH_"))}
    env["VOICEGRAPH_PRELOAD"] = "0"
    proc = subprocess.Popen([sys.executable, "-m", "flow.cli", "serve", "--workers", "2", "--host", "127.0.0.1",
                             "--port", str(port), "--no-ui"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        seen: dict[int, dict] = {}
        while len(seen) < 2 and time.monotonic() < deadline:
            for p in (port, port + 1):
                if p not in seen and (h := _health(p)) is not None:
                    seen[p] = h
            time.sleep(0.2)
        assert {seen[p]["worker"] for p in seen} == {"w1", "w2"}, seen
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert _health(port) is None and _health(port + 1) is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_refuses_an_unknown_store_at_start_up() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "VOICEGRAPH_"))}
    env.update(VOICEGRAPH_STORE="postgres://db/x", VOICEGRAPH_PRELOAD="0")
    run = subprocess.run([sys.executable, "-m", "flow.cli", "serve", "--port", "0", "--no-ui"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "unknown store 'postgres'" in run.stderr, run.stderr[-2000:]
