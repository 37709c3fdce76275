"""Segmenters keyed by recording: late audio of an older recording never lands in a newer one."""

from __future__ import annotations

import pytest

from flow.testing.speech import pcm16, speak_piper
from nodes.recording_segmenters import RecordingSegmenters, Tagged
from nodes.segmenter import Segmenter, SpeechStart, UtteranceEnd
from nodes.voice_activity import make_detector

RATE = 16_000
MS = RATE * 2 // 1000


def zeros(ms: int) -> bytes:
    return b"\0" * (ms * MS)


@pytest.fixture(scope="module")
def short() -> bytes:
    return zeros(300) + pcm16(speak_piper("Turn on the kitchen lights please."))


@pytest.fixture(scope="module")
def long() -> bytes:
    return zeros(300) + pcm16(speak_piper("Could you tell me how long it takes to drive from Boston to New York?"))


def segmenters(max_open: int = 4) -> RecordingSegmenters:
    return RecordingSegmenters(lambda rate: Segmenter(make_detector("energy", rate), rate=rate), max_open)


def ends(events: list[Tagged]) -> list[Tagged]:
    return [t for t in events if isinstance(t.event, UtteranceEnd)]


def alone(audio: bytes) -> bytes:
    """The utterance a recording makes when nothing else is going on."""
    seg = Segmenter(make_detector("energy", RATE), rate=RATE)
    [utt] = [e for e in seg.push(audio) + seg.flush("stop") if isinstance(e, UtteranceEnd)]
    return utt.audio


def audio(t: Tagged) -> bytes:
    assert isinstance(t.event, UtteranceEnd)
    return t.event.audio


def test_late_audio_of_the_previous_recording_stays_in_it(short, long) -> None:
    segs = segmenters()
    half = len(short) // 2 // 2 * 2
    events = segs.start(1, "en", "nova") + segs.push(1, short[:half], RATE)
    # recording 2 starts, and its audio arrives, before recording 1's decoder delivered its end
    events += segs.start(2, "de", None) + segs.push(2, long, RATE)
    events += segs.push(1, short[half:], RATE) + segs.end(1) + segs.end(2)
    one, two = ends(events)
    assert (one.recording, one.language, one.voice) == (1, "en", "nova")
    assert (two.recording, two.language, two.voice) == (2, "de", None)
    assert one.event.reason == two.event.reason == "stop"
    assert audio(one) == alone(short) and audio(two) == alone(long)  # none merged, none cut
    assert segs.open == {}


def test_an_end_flushes_only_its_own_recording(short, long) -> None:
    segs = segmenters()
    segs.push(1, short, RATE)
    segs.push(2, long[: len(long) // 2 // 2 * 2], RATE)
    [one] = ends(segs.end(1))
    assert one.recording == 1 and set(segs.open) == {2}
    [two] = ends(segs.push(2, long[len(long) // 2 // 2 * 2:], RATE) + segs.end(2))
    assert audio(one) == alone(short) and audio(two) == alone(long)


def test_audio_after_the_end_is_ignored(short) -> None:
    segs = segmenters()
    segs.push(1, short, RATE)
    assert len(ends(segs.end(1))) == 1
    assert segs.push(1, short, RATE) == [] and segs.end(1) == [] and segs.open == {}


def test_recordings_whose_end_never_comes_are_flushed_oldest_first(short) -> None:
    segs = segmenters(max_open=2)
    flushed = []
    for n in range(1, 6):
        flushed += ends(segs.start(n, None, None) + segs.push(n, short, RATE))
    assert [t.recording for t in flushed] == [1, 2, 3] and set(segs.open) == {4, 5}
    assert segs.push(1, short, RATE) == []  # too late: recording 1 is over
    assert [t.recording for t in ends(segs.end_before(6))] == [4, 5] and segs.open == {}


def test_speech_start_and_its_utterance_share_an_id(short) -> None:
    segs = segmenters()
    events = segs.push(1, short + zeros(1000) + short + zeros(1000), RATE)
    kinds = [(type(t.event), t.utterance_id) for t in events]
    assert [k for k, _ in kinds] == [SpeechStart, UtteranceEnd, SpeechStart, UtteranceEnd]
    assert kinds[0][1] == kinds[1][1] != kinds[2][1] == kinds[3][1]
