"""`voicegraph serve --workers N`: N worker processes on consecutive ports, on one machine.

Each worker is an ordinary `voicegraph serve` (named `w1`…`wN` by `VOICEGRAPH_WORKER`); this
parent only starts them, forwards SIGINT/SIGTERM (each worker drains its replies in flight) and
waits for them. It balances nothing: put HAProxy or nginx in front (`deploy/`), and give the
workers a `VOICEGRAPH_REDIS_URL` so that they share conversations and one dashboard. Only the
first worker serves the dashboard. A worker that dies is reported, not restarted: the balancer
sends its clients to the others, and they reconnect with their conversation ids.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

log = logging.getLogger("voicegraph.workers")


def run_workers(n: int, port: int, serve_args: Sequence[str], env: dict[str, str], ui: bool) -> int:
    """Start `n` workers on `port`…`port+n-1` and wait for them; the worst exit code."""
    if not env.get("VOICEGRAPH_REDIS_URL"):
        log.warning("--workers %d without VOICEGRAPH_REDIS_URL: the workers share nothing (each keeps its own "
                    "conversations unless VOICEGRAPH_STORE is shared, each dashboard shows its own worker)", n)
    procs: list[subprocess.Popen] = []
    for i in range(n):
        child_env = {**env, "VOICEGRAPH_WORKER": env.get("VOICEGRAPH_WORKER_PREFIX", "w") + str(i + 1)}
        args = [sys.executable, "-m", "flow.cli", "serve", *serve_args, "--port", str(port + i)]
        if i > 0 or not ui:
            args.append("--no-ui")
        procs.append(subprocess.Popen(args, env=child_env))
    log.info("%d workers on ports %d-%d (pids %s); put HAProxy or nginx in front (deploy/)",
             n, port, port + n - 1, " ".join(str(p.pid) for p in procs))

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    reported: set[int] = set()
    while any(p.poll() is None for p in procs):
        for i, p in enumerate(procs):
            if p.poll() is not None and i not in reported:
                reported.add(i)
                log.warning("worker w%d (pid %d, port %d) exited with %s", i + 1, p.pid, port + i, p.returncode)
        time.sleep(0.2)
    codes = [p.returncode for p in procs]
    return max((abs(c) for c in codes), default=0) if any(codes) else 0

