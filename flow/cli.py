"""`voicegraph serve | check | graph | nodes` — the command line a user runs.

`serve` validates the graph (providers included) before it opens the port, and says which
provider every node uses and how to switch, so a missing key or extra shows up at start-up
rather than on the first utterance.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Mapping

from flow import heap
from flow.config import Settings
from flow.graph.loader import graph_path

log = logging.getLogger("voicegraph")


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
YOUNG_GC_THRESHOLD = 2000
"""Allocations between young garbage collections in `voicegraph serve` (Python's default: 700)."""


def _log_format(env: Mapping[str, str] | None) -> str:
    """`LOG_FORMAT`, with the worker's name when one is given (`VOICEGRAPH_WORKER`, as `serve
    --workers` names them): N workers write to one terminal, and a line must say whose it is."""
    worker = (env or {}).get("VOICEGRAPH_WORKER", "").replace("%", "%%")
    return LOG_FORMAT.replace(" %(name)s", f" [{worker}] %(name)s") if worker else LOG_FORMAT


def _setup_logging(level: str, env: Mapping[str, str] | None = None) -> None:
    """Log to stderr; every line, tracebacks included, with `env`'s secrets and anything that
    looks like a credential redacted (`flow.redact`)."""
    from flow.redact import RedactingFormatter

    root = logging.getLogger()
    before = list(root.handlers)
    fmt = _log_format(env)
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), format=fmt)
    for handler in root.handlers:
        if handler not in before:  # ours, not an embedding application's (or pytest's)
            handler.setFormatter(RedactingFormatter(fmt, env))
    for noisy in ("engineio", "socketio", "aiohttp.access", "httpx", "httpx2", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_serve(args: argparse.Namespace) -> int:
    if args.workers > 1:
        return _serve_workers(args)
    settings = Settings.from_env()
    updates = {k: v for k, v in (("host", args.host), ("port", args.port), ("ui_host", args.ui_host),
                                 ("ui_port", args.ui_port)) if v is not None}
    if args.no_ui:
        updates["ui"] = False
    if args.graph:
        updates["graph"] = args.graph
    if args.record:
        updates["record_dir"] = args.record
    settings = settings.model_copy(update=updates)
    _setup_logging(args.log_level or settings.log_level, settings.env)
    insecure_ui = False
    if settings.ui:
        from ui.door import insecure_from_env, refusal

        insecure_ui = args.insecure_ui or insecure_from_env(settings.env)
        refused = refusal(settings.ui_host, settings.token is not None, insecure_ui)
        if refused:
            print(f"voicegraph: {refused}", file=sys.stderr)
            return 2

    from flow.contract.resources import Resources
    from flow.graph.loader import GraphError, load_graph
    from flow.transport.server import VoicegraphServer, running

    resources = Resources(settings)
    path = graph_path(settings.graph)
    try:
        spec = load_graph(path, env=settings.env, resources=resources)
    except (GraphError, OSError) as err:
        print(f"voicegraph: cannot serve {path}:\n{err}", file=sys.stderr)
        return 2
    for warning in spec.warnings:
        log.warning("%s", warning)
    try:
        server = VoicegraphServer(spec, resources)
    except ValueError as err:  # VOICEGRAPH_STORE or VOICEGRAPH_REDIS_URL unusable
        print(f"voicegraph: {err}", file=sys.stderr)
        return 2
    # how to switch an `auto` provider was logged by the nodes while the graph was checked
    log.info("graph %s (%s), providers: %s", spec.name, path, server.providers() or "none")
    if settings.record_dir:
        log.info("recording every session to %s (the users' audio, text and replies: personal data)",
                 settings.record_dir)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        async with running(server, settings.host, settings.port) as url:
            # Everything alive now (modules, the SDK's models, the warmed graph) lives as long as
            # the process: take it out of the collector's sight. Full collections otherwise walk
            # it all; those pauses (80-110 ms at 100 sessions) were the tail of turn latency.
            # Only here, not in VoicegraphServer: an application embedding it owns its own heap.
            gc.collect()
            gc.freeze()
            # Young collections every 2,000 net allocations instead of 700 (CPython 3.13's default
            # too): fewer of them means fewer objects promoted in passing, so fewer full ones. At
            # 100 real-time webm sessions (111 s of turns, 4 runs each) a full collection of 54-94 ms
            # fell in every run at 700 and in none at 2,000; young ones stay under 3 ms.
            gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
            # Freed C heap back to the OS every half minute (`flow.heap`): without it the RSS keeps
            # the high-water mark of the worst burst so far (+54 % over a 30-minute soak).
            trimmer = loop.create_task(heap.trim_periodically(settings.heap_trim_s), name="heap-trim")
            every = settings.host in ("0.0.0.0", "", "::")  # the URL shown is loopback; say it is not only that
            print(f"voicegraph listening on {url} ({'every interface, ' if every else ''}Socket.IO + GET /health)",
                  flush=True)
            dashboard = None
            if settings.ui:
                from ui.app import serve_dashboard

                try:
                    dashboard = await serve_dashboard(server, url, settings.ui_host, settings.ui_port,
                                                      insecure=insecure_ui)
                except OSError as err:
                    log.error("dashboard not started: cannot listen on %s:%s (%s); use --ui-port or --no-ui",
                              settings.ui_host, settings.ui_port, err.strerror or err)
                else:
                    print(f"dashboard on {dashboard.url}" + (" (needs VOICEGRAPH_TOKEN)" if settings.token else ""),
                          flush=True)
                    if insecure_ui and not settings.token:
                        log.warning("the dashboard on %s has no token (--insecure-ui): whoever reaches it can "
                                    "edit the graph", settings.ui_host)
            await stop.wait()
            # graceful: no one new (health 503, connects refused); replies in flight finish
            trimmer.cancel()
            await server.drain(settings.drain_s)
            if dashboard is not None:
                await dashboard.aclose()

    asyncio.run(main())
    return 0


def _serve_workers(args: argparse.Namespace) -> int:
    """`--workers N`: N `voicegraph serve` processes on consecutive ports (see `flow.workers`)."""
    import os

    from flow.workers import run_workers

    settings = Settings.from_env()
    _setup_logging(args.log_level or settings.log_level, settings.env)
    passed = [("--graph", args.graph), ("--host", args.host), ("--log-level", args.log_level),
              ("--ui-port", args.ui_port), ("--ui-host", args.ui_host), ("--record", args.record)]
    serve_args = [a for flag, value in passed if value is not None for a in (flag, str(value))]
    if args.insecure_ui:
        serve_args.append("--insecure-ui")
    port = args.port if args.port is not None else settings.port
    if port == 0:
        print("voicegraph: --workers needs a --port to count from (the balancer names each worker's)",
              file=sys.stderr)
        return 2
    return run_workers(args.workers, port, serve_args, dict(os.environ), ui=settings.ui and not args.no_ui)


def cmd_check(args: argparse.Namespace) -> int:
    from flow.graph.loader import GraphError, check_files

    failed = 0
    for path, result in check_files([graph_path(p) for p in args.files]):
        if isinstance(result, GraphError):
            failed += 1
            print(result)
            continue
        for warning in result.warnings:
            print(warning)
        notes = [f"graph {result.name!r}: {len(result.nodes)} nodes, {len(result.edges)} edges"]
        if result.bases:
            notes.append(f"extends {' -> '.join(result.bases)}")
        if result.warnings:
            notes.append(f"{len(result.warnings)} warning(s)")
        if result.warnings and args.strict:
            failed += 1
            print(f"{path}: FAILED with --strict ({'; '.join(notes)})")
            continue
        print(f"{path}: OK ({'; '.join(notes)})")
    return 1 if failed else 0


def cmd_graph(args: argparse.Namespace) -> int:
    from flow.graph.loader import GraphError, load_graph
    from flow.graph.mermaid import to_mermaid

    try:
        print(to_mermaid(load_graph(graph_path(args.file))))
    except GraphError as err:
        print(err, file=sys.stderr)
        return 1
    return 0


def cmd_nodes(args: argparse.Namespace) -> int:
    import json

    from flow.graph import registry
    from flow.graph.compose import hint
    from flow.graph.reference import reference
    from flow.graph.reference_format import as_markdown, as_text

    try:
        ref = reference(args.types or None, builtin_only=args.builtin)
    except KeyError as err:
        name = err.args[0]
        print(f"voicegraph: unknown node type {name!r}{hint(name, registry.names())}; installed node types: "
              f"{', '.join(registry.names())}", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps(ref.to_json(), indent=2, ensure_ascii=False))
    elif args.format == "markdown":
        print(as_markdown(ref), end="")
    else:
        print(as_text(ref), end="")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    _setup_logging("WARNING")
    try:
        from flow.bench.run import main as bench
    except ImportError as err:  # the bench speaks with piper: it needs the offline extra
        print(f"voicegraph bench needs the offline extra (pip install 'voicegraph[offline]'): {err}",
              file=sys.stderr)
        return 2
    if args.soak is not None:
        from flow.bench.soak import main as soak

        return soak(args.soak, args.sessions)
    return bench(quick=args.quick, out=args.out, only_cluster=args.cluster, profile=args.profile,
                 only=args.only.split(",") if args.only else None)


def cmd_replay(args: argparse.Namespace) -> int:
    _setup_logging(args.log_level or "WARNING")
    from flow.replay.command import main as replay

    return replay(args.file, args.graph, args.speed, args.url, args.expect_same_transcripts)


def _speed(value: str) -> str:
    if value == "max":
        return value
    try:
        if float(value) > 0:
            return value
    except ValueError:
        pass
    raise argparse.ArgumentTypeError("a positive factor (1 = as recorded) or 'max'")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voicegraph", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the Socket.IO server")
    serve.add_argument("--graph", help="graph file or bundled graph name (default: default)")
    serve.add_argument("--host", help="bind address (default 0.0.0.0, or HOST)")
    serve.add_argument("--port", type=int, help="port (default 3001, or PORT)")
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING (default LOG_LEVEL or INFO)")
    serve.add_argument("--ui-port", type=int, help="dashboard port (default 8080, or VOICEGRAPH_UI_PORT)")
    serve.add_argument("--ui-host", help="dashboard bind address (default 127.0.0.1, or VOICEGRAPH_UI_HOST)")
    serve.add_argument("--no-ui", action="store_true", help="do not serve the dashboard")
    serve.add_argument("--insecure-ui", action="store_true",
                       help="allow a dashboard without VOICEGRAPH_TOKEN on a non-loopback --ui-host "
                            "(or VOICEGRAPH_INSECURE_UI=1); refused otherwise")
    serve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="start N worker processes on consecutive ports from --port (a balancer goes in "
                            "front: deploy/); only the first serves the dashboard")
    serve.add_argument("--record", metavar="DIR",
                       help="record every session (its audio included) to DIR (or VOICEGRAPH_RECORD_DIR)")
    serve.set_defaults(fn=cmd_serve)
    check = sub.add_parser("check", help="validate graph files; non-zero exit on errors (and warnings with --strict)")
    check.add_argument("files", nargs="+")
    check.add_argument("--strict", action="store_true", help="warnings fail too (exit 1)")
    check.set_defaults(fn=cmd_check)
    graph = sub.add_parser("graph", help="print a graph as a Mermaid flowchart")
    graph.add_argument("file")
    graph.set_defaults(fn=cmd_graph)
    nodes = sub.add_parser("nodes", help="the installed node types: ports, params, the package providing each")
    nodes.add_argument("types", nargs="*", metavar="TYPE", help="only these types (default: all installed)")
    nodes.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    nodes.add_argument("--builtin", action="store_true",
                       help="only voicegraph's own types (docs/nodes.md is made with --builtin --format markdown)")
    nodes.set_defaults(fn=cmd_nodes)
    bench = sub.add_parser("bench", help="measure voicegraph on this machine; writes BENCHMARKS.md")
    bench.add_argument("--quick", action="store_true", help="every scenario at a tiny size (a smoke test)")
    bench.add_argument("--out", default="BENCHMARKS.md", help="where to write the table ('' for nowhere)")
    bench.add_argument("--soak", type=float, metavar="MINUTES",
                       help="instead: real-time sessions with turns for MINUTES; memory growth and tracebacks")
    bench.add_argument("--cluster", action="store_true",
                       help="only scenario 11: 1 vs 2 workers behind HAProxy, reconnect after a worker is killed "
                            "(needs redis-server and haproxy)")
    bench.add_argument("--only", metavar="N,N,...",
                       help="only these scenarios, by their number in the table (e.g. 2,5,11)")
    bench.add_argument("--sessions", type=int, default=100, help="with --soak: how many sessions (default 100)")
    bench.add_argument("--profile", metavar="SCENARIO",
                       help="run one scenario (burst, turns, capacity, capacity-webm, ingest, ingest-webm, "
                            "first-audio) with py-spy sampling the server; writes profile-SCENARIO.svg")
    bench.set_defaults(fn=cmd_bench)
    rep = sub.add_parser("replay", help="feed a recorded session to a server and compare what comes back")
    rep.add_argument("file", help="a recording (voicegraph serve --record DIR)")
    rep.add_argument("--graph", help="graph file or bundled name to replay through (default: the recorded one)")
    rep.add_argument("--speed", type=_speed, default="1", help="1 (as recorded), another factor, or max")
    rep.add_argument("--url", help="replay to this running server instead of one started here")
    rep.add_argument("--expect-same-transcripts", action="store_true",
                     help="exit 1 if the final transcripts differ from the recorded ones")
    rep.add_argument("--log-level", help="the local server's log level (default WARNING)")
    rep.set_defaults(fn=cmd_replay)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except BrokenPipeError:  # `voicegraph nodes | head`: the reader has what it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush finds no pipe
        return 141  # what a shell reports for a command stopped by SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
