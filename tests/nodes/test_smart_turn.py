"""Smart Turn v3 and Silero VAD on real speech: the learned detectors of the silence finalizer."""

from __future__ import annotations

import numpy as np
import pytest

from flow.testing.speech import pcm16, speak_espeak, speak_piper
from nodes.segmenter import Segmenter, SpeechStart, UtteranceEnd
from nodes.smart_turn import SmartTurn, log_mel, mel_filters, model_path
from nodes.voice_activity import make_detector

FINISHED = ["Please turn off the kitchen lights.", "Set a timer for ten minutes."]
UNFINISHED = ["What is the weather like in", "Can you tell me about the"]
"""Cut-off sentences that both synthetic voices speak with unfinished prosody; a TTS voice often
says a cut-off sentence ("Set a timer for") as if it ended, and the model, which hears prosody,
then calls it finished: what it is judged on here is what it can know."""


def test_the_model_ships_in_the_installed_package() -> None:
    path = model_path()
    assert path.name == "smart-turn-v3.2-cpu.onnx" and path.stat().st_size > 1_000_000


def test_features_are_whispers_shape_and_range() -> None:
    rng = np.random.default_rng(0)
    short = log_mel(rng.standard_normal(16_000).astype(np.float32) * 0.1)
    assert short.shape == (80, 800) and short.dtype == np.float32
    assert short.max() - short.min() <= 2.0 + 1e-6  # clamped to 8 decades of power below the peak, over 4
    # the last 8 s are what counts: a longer input keeps its end
    long = rng.standard_normal(16_000 * 10).astype(np.float32) * 0.1
    assert np.array_equal(log_mel(long), log_mel(long[-16_000 * 8:]))
    filters = mel_filters()
    assert filters.shape == (80, 201) and (filters >= 0).all() and (filters.sum(axis=1) > 0).all()


@pytest.mark.parametrize("voice", [speak_piper, speak_espeak])
def test_finished_sentences_score_as_finished(voice) -> None:
    assert all(SmartTurn.finished(pcm16(voice(t))) > 0.5 for t in FINISHED)


def test_cut_off_sentences_score_as_unfinished() -> None:
    # espeak-ng only: piper draws its prosody at random, and a cut-off sentence it happens to
    # speak with a falling end is, to a model that hears prosody, finished
    assert all(SmartTurn.finished(pcm16(speak_espeak(t))) < 0.5 for t in UNFINISHED)


def test_only_16_khz() -> None:
    with pytest.raises(ValueError, match="16 kHz"):
        SmartTurn.finished(b"\0" * 3200, 8000)


def test_silero_segments_real_speech_and_ignores_silence_and_noise() -> None:
    speech = pcm16(speak_piper("Turn on the kitchen lights please."))
    rng = np.random.default_rng(3)
    hiss = (rng.standard_normal(16_000) * 300).astype("<i2").tobytes()
    audio = b"\0" * 16_000 + hiss + speech + b"\0" * 32_000
    seg = Segmenter(make_detector("silero", 16_000), silence_ms=700)
    events = []
    for i in range(0, len(audio), 1280):
        events += seg.push(audio[i:i + 1280])
    assert [type(e) for e in events] == [SpeechStart, UtteranceEnd]
    assert events[0].timestamp_ms > 1450  # the speech begins at 1.5 s: not the hiss (0.5-1.5 s) before it
    with pytest.raises(ValueError, match="16 kHz"):
        make_detector("silero", 8000)
