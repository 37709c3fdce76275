"""Speculation in the segmenter, in audio time: tentative utterances, withdrawals and commits.

Synthetic speech (loud noise bursts) with random pause patterns, pushed in random chunk sizes,
through the finalizer's bookkeeping (`RecordingSegmenters`). The downstream rule the graph
follows (a tentative utterance becomes a tentative turn; a withdrawal cancels it; a commit with
its id confirms it, any other commit is a new turn) is modelled here in a few lines, so the
property is the one the user feels: every loud sample ends up in exactly one committed turn, and
no utterance becomes two turns.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodes.finished_sentence import sounds_finished
from nodes.recording_segmenters import RecordingSegmenters
from nodes.segmenter import Segmenter, SpeechStart, Tentative, UtteranceEnd, Withdraw
from nodes.voice_activity import make_detector

RATE = 16_000
MS = RATE * 2 // 1000
LOUD = 1000


def zeros(ms: int) -> bytes:
    return b"\0" * (ms * MS)


def burst(ms: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(ms * RATE // 1000) * 3000).clip(-32768, 32767).astype("<i2").tobytes()


def loud(pcm: bytes) -> int:
    return int((np.abs(np.frombuffer(pcm, "<i2").astype(np.int32)) > LOUD).sum())


def segmenters(speculate_after_ms: int = 250, silence_ms: int = 700) -> RecordingSegmenters:
    return RecordingSegmenters(lambda rate: Segmenter(
        make_detector("energy", rate), silence_ms=silence_ms, speculate_after_ms=speculate_after_ms, rate=rate))


def turns_of(events: list) -> tuple[list[tuple[int, bytes]], list[str]]:
    """Committed turns `(number, audio)` and how each utterance id ended, as the graph would make them."""
    number, ahead, committed, fates = 0, None, [], []
    for t in events:
        ev = t.event
        if isinstance(ev, Tentative):
            assert ahead is None or ahead[0] != t.utterance_id, "a second tentative for the same pause"
            number += 1
            ahead = (t.utterance_id, number, ev.audio)
        elif isinstance(ev, Withdraw):
            assert ahead is not None and ahead[0] == t.utterance_id, "a withdrawal of nothing"
            ahead = None
            fates.append("withdrawn")
        elif isinstance(ev, UtteranceEnd):
            if ahead is not None and ahead[0] == t.utterance_id:
                # the commit confirms exactly the speech its tentative utterance held
                assert loud(ahead[2]) == loud(ev.audio)
                committed.append((ahead[1], ev.audio))
                fates.append("committed ahead")
            else:
                number += 1
                committed.append((number, ev.audio))
                fates.append("committed")
            ahead = None
    return committed, fates


@settings(max_examples=60, deadline=None)
@given(
    pattern=st.lists(st.tuples(st.integers(10, 60), st.integers(0, 60)), min_size=1, max_size=6),
    chunk=st.integers(1, 4000),
)
def test_random_pauses_lose_no_speech_and_make_no_duplicate_turn(pattern, chunk) -> None:
    """Bursts of 200-1200 ms with pauses of 0-1200 ms (20 ms steps), then 1 s of silence."""
    audio = zeros(300)
    for i, (speech, pause) in enumerate(pattern):
        audio += burst(speech * 20, i) + zeros(pause * 20)
    audio += zeros(1000)
    recs = segmenters()
    events = []
    for i in range(0, len(audio), chunk * 2):
        events += recs.push(1, audio[i:i + chunk * 2], RATE)
    events += recs.end(1)
    committed, fates = turns_of(events)
    assert sum(loud(a) for _, a in committed) == loud(audio)  # nothing lost, nothing twice
    numbers = [n for n, _ in committed]
    assert len(set(numbers)) == len(numbers)
    assert sorted(numbers) == numbers
    # every utterance closed by silence was speculated first (the pause passed 250 ms on its way)
    ends = [t.event for t in events if isinstance(t.event, UtteranceEnd)]
    assert all(f == "committed ahead" for f, e in zip([f for f in fates if f != "withdrawn"], ends, strict=True)
               if e.reason == "silence")
    # a pause shorter than 250 ms never speculates; one of 260-680 ms withdraws unless it is the last
    tentatives = sum(isinstance(t.event, Tentative) for t in events)
    assert tentatives == sum(f != "committed" for f in fates)


def test_a_pause_between_speculate_and_silence_withdraws_then_commits_all() -> None:
    audio = zeros(300) + burst(600, 1) + zeros(400) + burst(600, 2) + zeros(1000)
    events = segmenters().push(1, audio, RATE)
    kinds = [type(t.event) for t in events]
    assert kinds == [SpeechStart, Tentative, Withdraw, Tentative, UtteranceEnd]
    first, withdrawn, second, end = events[1:]
    assert first.utterance_id == withdrawn.utterance_id != second.utterance_id == end.utterance_id
    assert loud(first.event.audio) == loud(burst(600, 1))
    assert loud(second.event.audio) == loud(end.event.audio) == loud(audio)


def test_without_speculation_nothing_changes() -> None:
    audio = zeros(300) + burst(600, 1) + zeros(400) + burst(600, 2) + zeros(1000)
    kinds = [type(t.event) for t in segmenters(speculate_after_ms=0).push(1, audio, RATE)]
    assert kinds == [SpeechStart, UtteranceEnd]


def test_commit_early_closes_a_finished_pause_sooner() -> None:
    seg = Segmenter(make_detector("energy", RATE), silence_ms=700, speculate_after_ms=250)
    events = seg.push(zeros(300) + burst(600, 1) + zeros(300))
    assert [type(e) for e in events] == [SpeechStart, Tentative]
    [end] = seg.end_pause_at(300)  # the pause is 300 ms long already: closed now
    assert isinstance(end, UtteranceEnd) and end.reason == "early"
    assert loud(end.audio) == loud(burst(600, 1))
    # later: the hint arrives before the pause is long enough; the pause closes at 400 ms
    seg.push(burst(600, 2) + zeros(260))
    assert seg.end_pause_at(400) == []
    [end] = [e for e in seg.push(zeros(200)) if isinstance(e, UtteranceEnd)]
    assert end.reason == "early" and end.closed_ms - end.speech_end_ms == 400
    # speech resuming forgets the hint: that pause waits for silence_ms again
    seg.push(burst(600, 3) + zeros(260))
    assert seg.end_pause_at(400) == []
    seg.push(burst(300, 4))
    closed = [e for e in seg.push(zeros(1000)) if isinstance(e, UtteranceEnd)]
    assert [e.reason for e in closed] == ["silence"] and closed[0].closed_ms - closed[0].speech_end_ms == 700


def test_without_a_tentative_utterance_an_early_commit_does_nothing() -> None:
    seg = Segmenter(make_detector("energy", RATE), silence_ms=700)
    seg.push(zeros(300) + burst(600, 1) + zeros(300))
    assert seg.end_pause_at(100) == []


@pytest.mark.parametrize(("text", "finished"), [
    ("What is the weather in Paris?", True),
    ("Turn on the lights.", True),
    ("I want to go to the.", False),
    ("And then.", False),
    ("Um.", False),
    ("So...", False),
    ("what is the weather", False),
    ("", False),
])
def test_what_sounds_finished(text: str, finished: bool) -> None:
    assert sounds_finished(text) is finished
