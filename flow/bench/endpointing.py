"""Endpointing: how long after the end of real speech the silence finalizer closes the utterance.

Measured in audio time on the segmenter itself (a pure state machine), with real piper speech fed in
40 ms chunks: the figure a client sees on top is only network and decoding.
"""

from __future__ import annotations

import numpy as np

from flow.testing.speech import pcm16, speak_piper
from nodes.segmenter import Segmenter, UtteranceEnd
from nodes.voice_activity import make_detector

SENTENCES = ("Turn on the kitchen lights please.", "What is the weather like in Paris today?",
             "Set a timer for ten minutes.")


def speech_end_ms(pcm: bytes) -> float:
    x = np.abs(np.frombuffer(pcm, "<i2").astype(np.int32))
    return 1000 * np.nonzero(x > 0.02 * 32768)[0][-1] / 16000


def finalization_delays(silence_ms: int, detector: str = "energy") -> list[float]:
    """Per sentence: audio ms from the last loud sample to the chunk that closed the utterance."""
    delays = []
    for text in SENTENCES:
        speech = pcm16(speak_piper(text))
        audio = b"\0" * 9600 + speech + b"\0" * (2 * 32000)
        end = 300 + speech_end_ms(speech)
        seg = Segmenter(make_detector(detector, 16000), silence_ms=silence_ms)
        for i in range(0, len(audio), 1280):
            if any(isinstance(e, UtteranceEnd) for e in seg.push(audio[i:i + 1280])):
                delays.append(1000 * (i + 1280) / 32000 - end)
                break
    return delays
