"""The end-of-speech state machine on real speech, in audio time, independent of chunking."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flow.testing.speech import pcm16, speak_espeak, speak_piper
from nodes.segmenter import Segmenter, SpeechStart, UtteranceEnd
from nodes.voice_activity import make_detector

RATE = 16_000
MS = RATE * 2 // 1000  # bytes per millisecond


def zeros(ms: int) -> bytes:
    return b"\0" * (ms * MS)


def noise(ms: int, dbfs: float, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    amp = 32768 * 10 ** (dbfs / 20)
    return (rng.standard_normal(ms * RATE // 1000) * amp).clip(-32768, 32767).astype("<i2").tobytes()


@pytest.fixture(scope="module")
def speech() -> bytes:
    return pcm16(speak_piper("Turn on the kitchen lights please."))


def run(audio: bytes, chunk: int, kind: str = "energy", **kw) -> list:
    seg = Segmenter(make_detector(kind, RATE), **kw)
    events = []
    for i in range(0, len(audio), chunk):
        events += seg.push(audio[i:i + chunk])
    return events + seg.flush()


def utterances(events: list) -> list[UtteranceEnd]:
    return [e for e in events if isinstance(e, UtteranceEnd)]


def speech_end_ms(audio: bytes) -> float:
    """Where the speech's last loud sample is, in ms (ground truth from the samples)."""
    x = np.abs(np.frombuffer(audio, "<i2").astype(np.int32))
    loud = np.nonzero(x > 0.02 * 32768)[0]
    return 1000 * loud[-1] / RATE


@pytest.mark.parametrize("kind", ["energy", "webrtc"])
def test_one_utterance_ends_within_silence_ms(speech, kind) -> None:
    audio = zeros(500) + speech + zeros(1500)
    events = run(audio, 640, kind, silence_ms=700)
    [utt] = utterances(events)
    assert utt.reason == "silence"
    assert sum(isinstance(e, SpeechStart) for e in events) == 1
    end_of_speech = 500 + speech_end_ms(speech)
    # closed after the silence: silence_ms after the last loud sample, give or take the quiet tail
    # of the last word that a detector may still call speech (webrtc hears more of it)
    closed_at = utt.end_ms + max(0.0, 700 - 300)  # end_ms excludes the trimmed silence beyond the tail
    assert end_of_speech + 700 - 60 <= closed_at <= end_of_speech + 700 + 250
    assert len(utt.audio) / MS > len(speech) / MS - 200


@pytest.mark.parametrize("kind", ["energy", "webrtc"])
def test_utterance_says_when_speech_ended_and_when_it_was_closed(speech, kind) -> None:
    events = run(zeros(500) + speech + zeros(1500), 640, kind, silence_ms=700)
    [utt] = utterances(events)
    # the endpointing wait is the trailing silence, in audio time
    assert utt.closed_ms - utt.speech_end_ms == pytest.approx(700, abs=utt_frame(kind))
    end_of_speech = 500 + speech_end_ms(speech)
    assert end_of_speech - 60 <= utt.speech_end_ms <= end_of_speech + 250  # the quiet last word, as above
    assert utt.start_ms < utt.speech_end_ms < utt.end_ms <= utt.closed_ms


def test_a_stop_mid_speech_closes_where_the_speech_is(speech) -> None:
    seg = Segmenter(make_detector("energy", RATE))
    seg.push(zeros(300) + speech[: len(speech) // 2])
    [utt] = utterances(seg.flush("stop"))
    assert utt.closed_ms - utt.speech_end_ms < 300  # no endpointing wait: the stop ended it


def utt_frame(kind: str) -> float:
    return make_detector(kind, RATE).frame_ms


@pytest.mark.parametrize("kind", ["energy", "webrtc"])
def test_two_sentences_two_utterances(speech, kind) -> None:
    events = run(zeros(300) + speech + zeros(1500) + speech + zeros(1500), 1280, kind)
    assert len(utterances(events)) == 2


@pytest.mark.parametrize("kind", ["energy", "webrtc"])
def test_silence_and_click_make_nothing(kind) -> None:
    click = noise(60, -6)
    assert utterances(run(zeros(2000) + click + zeros(2000), 640, kind)) == []
    assert utterances(run(zeros(3000), 640, kind)) == []


def test_steady_noise_alone_is_not_speech() -> None:
    assert utterances(run(noise(5000, -40), 640)) == []


def test_speech_over_steady_noise_is_segmented(speech) -> None:
    bed = np.frombuffer(noise(6000, -45, seed=1), "<i2").astype(np.int32)
    sp = np.frombuffer(zeros(1500) + speech, "<i2").astype(np.int32)
    mix = bed.copy()
    mix[: len(sp)] += sp
    audio = mix.clip(-32768, 32767).astype("<i2").tobytes()
    assert len(utterances(run(audio, 640))) == 1


def test_max_length_closes_long_speech() -> None:
    long_speech = pcm16(speak_espeak("one two three four five six seven eight nine ten " * 3))
    events = run(long_speech, 3200, max_utterance_ms=2000, silence_ms=1500)
    first = utterances(events)[0]
    assert first.reason == "max_length" and abs(len(first.audio) / MS - 2000) <= 40


def test_flush_mid_speech_returns_the_utterance(speech) -> None:
    seg = Segmenter(make_detector("energy", RATE))
    assert utterances(seg.push(zeros(300) + speech[: len(speech) // 2])) == []
    [utt] = utterances(seg.flush("stop"))
    assert utt.reason == "stop" and len(utt.audio) >= len(speech) // 2 - 20 * MS
    assert seg.flush() == []


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=9000), min_size=1, max_size=40))
def test_events_do_not_depend_on_chunk_boundaries(cuts) -> None:
    audio = _AUDIO
    reference = run(audio, len(audio))
    seg = Segmenter(make_detector("energy", RATE))
    events, pos, i = [], 0, 0
    while pos < len(audio):
        size = cuts[i % len(cuts)]
        events += seg.push(audio[pos:pos + size])
        pos += size
        i += 1
    events += seg.flush()
    assert events == reference


_AUDIO = zeros(400) + pcm16(speak_espeak("hello there")) + zeros(1000) + pcm16(speak_espeak("bye")) + zeros(900)
