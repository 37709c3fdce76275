"""`voicegraph replay FILE [--graph G] [--speed 1|max] [--url URL] [--expect-same-transcripts]`.

Without `--url`, a server is started in this process on a loopback port, for the graph given or
the one the session was recorded with, and records the replay too (in a temporary directory), so
the stage times of both runs are known whatever the graph sends its clients. With `--url`, the
replay is one more client of that server (with `VOICEGRAPH_TOKEN` from the environment, if set),
and its stage times are those the graph sends (`turn-metrics`).
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flow.replay.compare import Run, summarize
from flow.replay.recording import Event, Recording, list_recordings, read_recording
from flow.replay.run import replay

if TYPE_CHECKING:
    from flow.transport.server import VoicegraphServer


@dataclass
class Outcome:
    recorded: Run
    replayed: Run
    graph: str
    events: list[Event] = field(default_factory=list)
    """The replay's outbound events, as received."""


def recorded_graph(rec: Recording) -> str:
    """The graph to replay through by default: the recorded one, if this machine has it."""
    from flow.graph.loader import graph_path

    path, name = rec.graph.get("path", ""), rec.graph.get("name", "")
    if path.startswith("graphs/") and graph_path(Path(path).stem).exists():
        return Path(path).stem
    if path and Path(path).is_file():
        return path
    if name and graph_path(name).exists():
        return name
    raise ValueError(f"the recording's graph ({name or path or 'unnamed'}) is not here: pass --graph")


async def replay_locally(rec: Recording, graph: str | None, speed: float | None, *,
                         env: dict[str, str] | None = None, graph_text: str | None = None) -> Outcome:
    """Replay `rec` through a server of our own for `graph` (or YAML `graph_text`)."""
    from flow.config import Settings
    from flow.contract.resources import Resources
    from flow.graph.loader import graph_path, load_graph, load_graph_text
    from flow.transport.server import VoicegraphServer, running

    with tempfile.TemporaryDirectory(prefix="voicegraph-replay-") as tmp:
        base = Settings.from_env(env) if env is not None else Settings.from_env()
        settings = base.model_copy(update={"host": "127.0.0.1", "port": 0, "ui": False, "record_dir": tmp})
        resources = Resources(settings)
        if graph_text is not None:
            spec = load_graph_text(graph_text, env=settings.env, resources=resources)
        else:
            spec = load_graph(graph_path(graph or recorded_graph(rec)), env=settings.env, resources=resources)
        server = VoicegraphServer(spec, resources)
        token = settings.token.get_secret_value() if settings.token else None
        async with running(server, "127.0.0.1", 0) as url:
            run = await replay(rec, url, speed=speed, auth={"token": token} if token else None)
            for _ in range(500):  # the session closes on the server, then its recording ends
                if run.sid not in server.sessions:
                    break
                await asyncio.sleep(0.01)
        # the server is stopped: its recorder wrote and closed every file
        mine = [r for r in list_recordings(tmp) if r["session"] == run.sid]
        turns = read_recording(mine[0]["path"]).turns if mine else []
        return Outcome(summarize(rec.outbound, rec.turns), summarize(run.outbound, turns), spec.name, run.outbound)


async def replay_to_server(server: VoicegraphServer, url: str, rec: Recording, speed: float | None) -> Outcome:
    """Replay `rec` to `server` (this process's, at `url`) through the graph it serves now; the
    replay's stage times come from its own recording when the server records (else the wire's)."""
    token = server.settings.token
    run = await replay(rec, url, speed=speed, auth={"token": token.get_secret_value()} if token else None)
    turns = []
    if server.recorder is not None:
        for _ in range(500):  # the session closes on the server, then its recording ends
            if run.sid not in server.sessions:
                break
            await asyncio.sleep(0.01)
        await asyncio.to_thread(server.recorder.flush)
        mine = [r for r in list_recordings(server.recorder.directory) if r["session"] == run.sid]
        turns = read_recording(mine[0]["path"]).turns if mine else []
    return Outcome(summarize(rec.outbound, rec.turns), summarize(run.outbound, turns), server.spec.name,
                   run.outbound)


async def replay_remote(rec: Recording, url: str, speed: float | None, token: str | None) -> Outcome:
    run = await replay(rec, url, speed=speed, auth={"token": token} if token else None)
    return Outcome(summarize(rec.outbound, rec.turns), summarize(run.outbound), url, run.outbound)


def main(file: str, graph: str | None, speed: str, url: str | None, expect_same_transcripts: bool) -> int:
    import os

    from flow.graph.loader import GraphError
    from flow.replay.compare import side_by_side, transcript_differences
    from flow.replay.recording import NotARecording

    try:
        rec = read_recording(file)
    except (OSError, NotARecording) as err:
        print(f"voicegraph replay: {err}")
        return 2
    pace = None if speed == "max" else float(speed)
    try:
        if url:
            outcome = asyncio.run(replay_remote(rec, url, pace, os.environ.get("VOICEGRAPH_TOKEN")))
        else:
            outcome = asyncio.run(replay_locally(rec, graph, pace))
    except (ValueError, GraphError) as err:  # GraphError: the graph file is wrong or missing
        print(f"voicegraph replay: {err}")
        return 2
    print(f"{Path(file).name}: {len(rec.inbound)} events in, recorded on graph {rec.graph.get('name', '?')!r}; "
          f"replayed through {outcome.graph!r} at speed {speed}")
    print(side_by_side(outcome.recorded, outcome.replayed))
    if expect_same_transcripts:
        differences = transcript_differences(outcome.recorded, outcome.replayed)
        for line in differences:
            print(f"DIFFERENT {line}")
        if differences:
            return 1
        print("transcripts: the same")
    return 0


def as_json(outcome: Outcome) -> dict[str, Any]:
    return {"graph": outcome.graph, "recorded": outcome.recorded.as_dict(), "replay": outcome.replayed.as_dict()}
