"""DashboardState folds monitor events into what the page shows (states, turns, replies)."""

from __future__ import annotations

from flow.monitor import MonitorEvent
from ui.model import DashboardState


def ev(kind: str, at: float, session: str = "s", **data) -> MonitorEvent:
    return MonitorEvent(kind, session, data, at_ms=at)


def test_a_voice_turn_walks_through_the_states_and_its_stage_latencies() -> None:
    one_second = {"bytes": 4000, "seconds": 1.0, "ref": "r/full"}  # events refer to audio, never carry it
    st = DashboardState()
    steps = [
        (ev("open", 0, graph="default", label="testbench"), "idle"),
        (ev("in", 10, event="start-recording", payload=None), "listening"),
        (ev("speech", 500, state="start", reason=None), "speech"),
        (ev("speech", 2000, state="end", reason="silence"), "transcribing"),
        (ev("stage", 2001, turn=1, stage="speech_end", at_ms=1300.0), "transcribing"),
        (ev("stage", 2001, turn=1, stage="endpointed", at_ms=2000.0), "transcribing"),
        (ev("stage", 2300, turn=1, stage="transcript", at_ms=2300.0), "transcribing"),
        (ev("out", 2301, event="message-received", payload={"text": "hi", "source": "voice"}), "thinking"),
        (ev("stage", 2700, turn=1, stage="first_token", at_ms=2700.0), "thinking"),
        (ev("stage", 3000, turn=1, stage="first_audio", at_ms=3000.0), "thinking"),
        (ev("out", 3001, event="ai-response", payload={"id": "r", "replyTo": "t", "text": "hello",
                                                      "audio": one_second}), "speaking"),
    ]
    for event, state in steps:
        st.apply(event)
        assert st.sessions["s"].current_state(event.at_ms) == state, event
    view = st.sessions["s"]
    assert view.current_state(3001 + 1100) == "listening"  # the reply finished playing
    assert view.turn_rows() == [{"turn": 1, "status": "answered", "speculation": "", "endpointed": 700.0,
                                 "transcript": 300.0, "first_token": 400.0, "first_audio": 300.0}]
    assert view.replies[-1].audio_url == "/reply-audio/r/full"
    # an interrupt after the reply was whole and played: nothing was cut, so not "interrupted"
    st.apply(ev("in", 5000, event="interrupt", payload={}))
    assert view.current_state(5001) == "listening" and list(view.interrupts) == [5000]
    # a turn the gate cancelled while it was being answered: that is "interrupted"
    st.apply(ev("out", 5100, event="message-received", payload={"text": "and?", "source": "text"}))
    st.apply(ev("stage", 5100, turn=2, stage="accepted", at_ms=5100.0))
    st.apply(ev("in", 5200, event="interrupt", payload={}))
    assert view.current_state(5201) == "thinking"
    st.apply(ev("stage", 5201, turn=2, stage="cancelled", at_ms=5201.0))
    st.apply(ev("turn", 5201, turn=2, outcome="cancelled", metrics={"cancelled": True}))
    assert view.current_state(5202) == "interrupted" and view.current_state(8000) == "listening"
    assert view.turn_rows()[0]["status"] == "cancelled"
    st.apply(ev("out", 5002, event="error", payload={"code": "bad_audio", "message": "x"}))
    assert list(view.errors) == [(5002, "bad_audio", "x")]
    st.apply(ev("close", 9000))
    assert "s" not in st.sessions and st.find("s") is view and view.current_state() == "closed"


def test_memory_is_bounded_however_long_a_session_talks() -> None:
    st = DashboardState()
    st.apply(ev("open", 0))
    for i in range(5000):
        st.apply(ev("tick", i, level_db=-20.0, speech=bool(i % 2), backlog=0.0, bytes_in=i))
        st.apply(ev("stage", i, turn=i, stage="accepted", at_ms=float(i)))
        st.apply(ev("out", i, event="message-received", payload={"text": str(i), "source": "text"}))
    view = st.sessions["s"]
    assert len(view.timeline) <= 300 and len(view.turns) <= 20 and len(view.transcripts) <= 20


async def test_an_odd_event_is_logged_and_the_view_keeps_following(caplog) -> None:
    import asyncio

    from flow.monitor import Monitor

    monitor, st = Monitor(), DashboardState()
    task = asyncio.get_running_loop().create_task(st.follow(monitor.subscribe()))
    monitor.publish("open", "s")
    monitor.publish("out", "s", event="message-received", payload=["not", "a", "dict"])
    monitor.publish("out", "s", event="error", payload={"code": "bad_audio", "message": "m"})
    for _ in range(50):
        await asyncio.sleep(0.01)
        if st.sessions.get("s") and st.sessions["s"].errors:
            break
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert st.sessions["s"].errors[0][1:] == ("bad_audio", "m")
    assert "could not show out event" in caplog.text
    assert not monitor.watched  # cancelling the view closed its subscription


def test_sessions_are_named_by_worker_and_a_silent_workers_sessions_close() -> None:
    import time

    st = DashboardState()
    now = time.time() * 1000
    for worker, sid in (("w1", "a"), ("w2", "b"), ("w2", "c")):
        st.apply(MonitorEvent("server", "", {"sessions": 1, "graph": "g"}, at_ms=now, server=worker))
        st.apply(MonitorEvent("open", sid, {"graph": "g", "label": sid}, at_ms=now, server=worker))
    assert {sid: v.worker for sid, v in st.sessions.items()} == {"a": "w1", "b": "w2", "c": "w2"}
    assert st.server["worker"] == "w1"  # the first worker heard of (a dashboard's own) is the one drawn
    st.apply(MonitorEvent("applied", "", {"ok": True, "message": "applied 'g'"}, at_ms=now, server="w2"))
    assert st.applied == {"w2": {"ok": True, "message": "applied 'g'"}}

    st.workers["w2"]["heard_ms"] -= 10_000  # w2 was killed: its figures stopped, no `close` comes
    st.forget_silent_workers(time.time() * 1000)
    assert list(st.sessions) == ["a"] and {v.sid for v in st.closed} == {"b", "c"}
    assert set(st.workers) == {"w1"}


def test_a_cancel_of_an_older_turn_does_not_read_as_interrupted_and_speculation_is_shown() -> None:
    st = DashboardState()
    st.apply(ev("open", 0))
    st.apply(ev("stage", 10, turn=1, stage="accepted", at_ms=10.0))
    st.apply(ev("out", 10, event="message-received", payload={"text": "one", "source": "text"}))
    st.apply(ev("stage", 20, turn=2, stage="accepted", at_ms=20.0))
    st.apply(ev("out", 20, event="message-received", payload={"text": "two", "source": "text"}))
    st.apply(ev("turn", 21, turn=1, outcome="cancelled", metrics={"cancelled": True}))
    view = st.sessions["s"]
    assert view.current_state(22) == "thinking"  # turn 2 goes on: the newer turn made 1 stale
    st.apply(ev("turn", 900, turn=2, outcome="answered",
                metrics={"speculative": True, "withdrawn": 1, "ms": {"speculated": 250.0, "endpointed": 700.0}}))
    assert view.turn_rows()[0]["speculation"] == "ahead, saved 450 ms · 1 withdrawn"
    assert view.turn_rows()[1]["speculation"] == ""
