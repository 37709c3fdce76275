"""The dashboard's page logic, through NiceGUI's simulated user against a real voicegraph server.

The page runs in the test's loop next to a real server (offline graph: pocketsphinx, echo,
piper); the testbench it drives is a real Socket.IO client of that server.
"""

from __future__ import annotations

import asyncio

import pytest
from nicegui import ui
from nicegui.testing import User, user_simulation

from flow.testing.servers import voicegraph
from ui.dashboard import Dashboard

pytestmark = pytest.mark.timeout(120)


async def until(check, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_spoken_sentence_shows_transcript_reply_levels_and_stage_latencies() -> None:
    async with voicegraph("offline") as srv:
        dash = Dashboard(srv.server, srv.url)
        async with user_simulation(root=dash.root) as user:
            user: User
            await user.open("/")
            await user.should_see("Inject", retries=50)
            assert dash.watching and srv.server.resources.monitor.watched
            user.find("Sentence").type("Please set a timer for ten minutes.")
            user.find("Speak it").click()
            await until(lambda: any(v.label == "testbench" for v in dash.state.sessions.values()),
                        what="testbench session")
            view = next(v for v in dash.state.sessions.values() if v.label == "testbench")
            await until(lambda: view.replies, timeout=40, what="a reply")
            said = " ".join(text for _, _, text in view.transcripts).lower()
            assert "timer" in said and "minutes" in said
            await user.should_see(view.replies[-1].text[:20], retries=50)
            # the level meter and timeline saw speech and silence; the stages were all measured
            assert any(speech for _, _, speech in view.timeline) and not all(s for _, _, s in view.timeline)
            assert max(db for _, db, _ in view.timeline) > -40
            rows = view.turn_rows()
            assert rows[0]["status"] == "answered"
            assert all(rows[0][k] != "" for k in ("transcript", "first_token", "first_audio"))
            assert view.current_state() in ("speaking", "listening", "idle")
            user.find("Replay").click()  # the same audio again: a second voice turn
            await until(lambda: len(view.replies) == 2, 40, "the replayed turn's reply")
            assert [src for _, src, _ in view.transcripts] == ["voice", "voice"]
            user.client.delete()  # the tab is closed for good: nobody pays for monitoring any more
            await until(lambda: not srv.server.resources.monitor.watched, 5, "the monitor unwatched")
            await until(lambda: not any(s.peer.get("label") for s in srv.server.sessions.values()),
                        5, "the testbench session closed")


async def test_broken_yaml_is_never_applied_and_valid_yaml_is() -> None:
    async with voicegraph("offline") as srv:
        from flow.testing.client import Recorder

        dash = Dashboard(srv.server, srv.url)
        before = srv.server.spec
        old_client = await Recorder().connect(srv.url)
        async with user_simulation(root=dash.root) as user:
            await user.open("/")
            editor = user.find(ui.codemirror).elements.pop()
            # offline.yaml extends default, so it names no types itself: add a node with a typo'd one
            editor.set_value(dash.graph_text.rstrip("\n") + "\n  extra: {type: chunk_bufer}\n")
            user.find("Apply").click()
            await user.should_see("chunk_buffer", retries=50)  # the loader's hint names the real type
            await user.should_see("problem(s): not applicable", retries=50)
            assert srv.server.spec is before
            assert any(d["kind"] == "line" for d in editor.decorations)
            editor.set_value(dash.graph_text.replace("name: offline", "name: edited"))
            user.find("Apply").click()
            await user.should_see("valid: graph 'edited'", retries=50)
            assert srv.server.spec.name == "edited"
            new_client = await Recorder().connect(srv.url)
            specs = {sid: s.spec.name for sid, s in srv.server.sessions.items()}
            assert specs[old_client.sio.get_sid()] == "offline"  # live sessions finish on their graph
            assert specs[new_client.sio.get_sid()] == "edited"
            await old_client.emit("text-message", "still here")
            await old_client.wait("ai-response", timeout=30)
            await old_client.close()
            await new_client.close()


async def test_a_hundred_live_sessions_are_listed_ten_per_page_and_the_page_keeps_up() -> None:
    from flow.testing.client import Recorder

    async with voicegraph("offline") as srv:
        dash = Dashboard(srv.server, srv.url)
        clients = [await Recorder().connect(srv.url) for _ in range(100)]
        try:
            async with user_simulation(root=dash.root) as user:
                await user.open("/")
                table = next(t for t in user.find(ui.table).elements if t.props.get("data-testid") == "sessions")
                await until(lambda: len(table.rows) == 100, 10, "100 rows")
                assert table.props["pagination"]["rowsPerPage"] == 10
                await asyncio.gather(*(c.emit("start-recording", {"format": "pcm16", "sampleRate": 16000})
                                       for c in clients))
                await until(lambda: sum(r["state"] == "listening" for r in table.rows) == 100, 10,
                            "every session listening")
                await clients[0].close()
                await until(lambda: sum(r["state"] == "closed" for r in table.rows) == 1, 10, "one closed")
        finally:
            for c in clients:
                await c.close()
