"""What the testbench folds from monitor events: settling states, failed nodes, streamed pieces,
bot speech and interrupts on the timeline, and the tap's bounded logs kept after a session closes."""

from __future__ import annotations

from flow.monitor import MonitorEvent
from ui import charts
from ui.model import DashboardState
from ui.tap_model import KEEP_CLOSED, KEEP_RECORDS, TapLog, TapRecord, path


def ev(kind: str, at: float, session: str = "s", **data) -> MonitorEvent:
    return MonitorEvent(kind, session, data, at_ms=at)


def started(st: DashboardState) -> None:
    st.apply(ev("open", 0, graph="default"))
    st.apply(ev("in", 10, event="start-recording", payload=None))
    st.apply(ev("speech", 500, state="start"))
    st.apply(ev("speech", 1500, state="end"))


def test_no_words_and_a_failure_settle_back_to_listening() -> None:
    st = DashboardState()
    started(st)
    view = st.sessions["s"]
    assert view.current_state(1600) == "transcribing"
    st.apply(ev("out", 2000, event="speech-result", payload={"text": " ", "isFinal": True, "utteranceId": "u"}))
    assert view.current_state(2001) == "nothing heard" and view.current_state(4500) == "listening"
    assert view.transcripts[-1][1] == "nothing heard"

    st.apply(ev("out", 5000, event="message-received", payload={"text": "hi", "source": "text"}))
    st.apply(ev("failed", 5100, node="llm", code="upstream_error", message="stub failure 500", turn=2))
    st.apply(ev("out", 5100, event="error", payload={"code": "upstream_error", "message": "stub failure 500"}))
    assert view.current_state(5101) == "failed" and view.current_state(7500) == "listening"
    assert view.recently_failed(6000) == ["llm"] and view.recently_failed(5100 + 61_000) == []

    st.apply(ev("out", 8000, event="message-received", payload={"text": "again", "source": "text"}))
    st.apply(ev("out", 8100, event="ai-typing", payload={"isTyping": False}))  # ended without a reply
    assert view.current_state(8101) == "listening"

    st.apply(ev("tick", 8200, level_db=-12.0, speech=True, backlog=0.5, bytes_in=10))
    st.apply(ev("in", 8300, event="stop-recording", payload=None))  # no ticks come after a stop
    assert (view.level_db, view.speech, view.backlog) == (-120.0, False, 0.0)
    assert view.current_state(8301) == "idle"


def test_streamed_pieces_bot_speech_and_interrupts() -> None:
    st = DashboardState()
    started(st)
    view = st.sessions["s"]
    for seq, at in enumerate((2000, 2500, 4000)):
        st.apply(ev("out", at, event="ai-response-chunk", payload={
            "id": "r1", "replyTo": "t1", "seq": seq, "text": f"piece {seq}.",
            "audio": {"bytes": 100, "seconds": 1.0, "ref": f"r1/{seq}"}}))
    [reply] = view.replies
    assert [(p.seq, p.audio_url, p.at_ms) for p in reply.pieces] == [
        (0, "/reply-audio/r1/0", 2000), (1, "/reply-audio/r1/1", 2500), (2, "/reply-audio/r1/2", 4000)]
    assert reply.text == "piece 0. piece 1. piece 2."
    assert list(view.bot_speech) == [[2000, 5000]]  # back to back: one span
    st.apply(ev("in", 4500, event="interrupt", payload={}))
    assert list(view.bot_speech) == [[2000, 4500]] and list(view.interrupts) == [4500]
    chart = charts.timeline(view, 6000)
    bot = next(s for s in chart["series"] if s["name"] == "bot speech")
    assert bot["data"] == [[-4.0, charts.BOT_DB], [-1.5, charts.FLOOR_DB]]
    assert next(s for s in chart["series"] if s["name"] == "interrupt")["data"] == [[-1.5, -3]]


def record(seq: int, label: str, **links) -> TapRecord:
    return TapRecord(seq, float(seq), 0, label, "X", links.get("turn"), links.get("utterance"),
                     links.get("recording"), links.get("cause"), links.get("summary", ""))


def test_following_a_turn_finds_its_transcript_utterance_and_audio() -> None:
    log = TapLog("s")
    for r in [record(1, "client.audio -> buffer.audio", recording=1),
              record(2, "finalizer.utterance -> stt.utterance", utterance="u", recording=1),
              record(9, "client.audio -> buffer.audio", recording=2),  # a later recording: not this turn
              record(3, "stt.transcript -> turns.transcript", utterance="u"),
              record(4, "turns.turn -> llm.turn", turn=1, cause=3),
              record(5, "client.text -> turns.text"),
              record(6, "turns.turn -> llm.turn", turn=2, cause=5)]:
        log.add(r)
    assert [r.seq for r in log.follow(1)] == [1, 2, 3, 4]
    assert [r.seq for r in log.follow(2)] == [5, 6]
    assert [r.seq for r in log.ordered()] == [1, 2, 3, 4, 5, 6, 9]
    assert path(log.follow(1))[0] == (0, "client.audio -> buffer.audio")


def test_tap_logs_are_bounded_and_kept_after_close() -> None:
    st = DashboardState()
    for n in range(KEEP_RECORDS + 10):
        st.apply(ev("tap", n, seq=n, edge=0, label="a.x -> b.y", type="T", turn=None, utterance=None,
                    recording=None, cause=None, summary="s"))
    log = st.taps.get("s")
    assert len(log.records) == KEEP_RECORDS and log.dropped == 10 and log.records[0].seq == 10
    st.apply(ev("open", 0, session="s"))
    st.apply(ev("close", 1, session="s"))
    assert st.taps.get("s").closed and len(st.taps.get("s").records) == KEEP_RECORDS
    for n in range(KEEP_CLOSED + 3):
        sid = f"c{n}"
        st.apply(ev("tap", 0, session=sid, seq=1, edge=0, label="a.x -> b.y", type="T", turn=None,
                    utterance=None, recording=None, cause=None, summary=""))
        st.apply(ev("close", 1, session=sid))
    assert len(st.taps.logs) == KEEP_CLOSED and "s" not in st.taps.logs
    assert record(1, "llm.reply -> tts.reply").matches(node="tts") and not record(1, "a.x -> b.y").matches(port="z")
