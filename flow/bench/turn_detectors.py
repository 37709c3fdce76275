"""End-of-turn detectors on real speech: false cut-offs and time to commit, in audio time.

Each detector (energy, webrtc, silero; each alone and with Smart Turn judging the pauses) runs
the silence finalizer's segmenter over sentences spoken by piper and espeak-ng, with added noise
(white, 40 dB below full scale), once whole and once with a 1 s pause in the middle: a pause
that ends the utterance there is a false cut-off. Time to commit is audio ms from the last loud
sample to the close, for whole sentences. `silence_ms` 700, `speculate_after_ms` 250,
`hesitation_ms` 1500; Smart Turn runs synchronously here (the finalizer runs it in the CPU pool).
"""

from __future__ import annotations

import statistics

import numpy as np

from flow.testing.speech import pcm16, speak_espeak, speak_piper
from nodes.segmenter import Segmenter, Tentative, UtteranceEnd
from nodes.voice_activity import make_detector

PAIRS = [("Could you tell me what the weather will be like", "in Paris tomorrow?"),
         ("Please book a table for four people", "at eight tonight."),
         ("Set a timer for", "ten minutes.")]
MS = 32


def _speech(text: str, voice) -> bytes:
    pcm = pcm16(voice(text))
    x = np.abs(np.frombuffer(pcm, "<i2").astype(np.int32))
    return pcm[: (int(np.nonzero(x > 0.02 * 32768)[0][-1]) + 800) * 2]


def _noisy(pcm: bytes, seed: int) -> bytes:
    x = np.frombuffer(pcm, "<i2").astype(np.float64)
    x += np.random.default_rng(seed).standard_normal(x.size) * 32768 * 10 ** (-40 / 20)
    return x.clip(-32768, 32767).astype("<i2").tobytes()


def _run(audio: bytes, detector: str, smart: bool) -> list[UtteranceEnd]:
    from nodes.smart_turn import SmartTurn

    seg = Segmenter(make_detector(detector, 16000), silence_ms=700, speculate_after_ms=250)
    ends: list[UtteranceEnd] = []
    for i in range(0, len(audio), 1280):
        for ev in seg.push(audio[i:i + 1280]):
            if isinstance(ev, Tentative) and smart:
                after = 250 if SmartTurn.finished(ev.audio) > 0.5 else 1500
                ends += [e for e in seg.end_pause_at(after) if isinstance(e, UtteranceEnd)]
            elif isinstance(ev, UtteranceEnd):
                ends.append(ev)
    return ends + [e for e in seg.flush() if isinstance(e, UtteranceEnd)]


def measure(pairs: int = len(PAIRS)) -> list[tuple[str, str]]:
    """(detector, figures) rows over the first `pairs` sentences of PAIRS in both voices."""
    clips = []
    for seed, (voice_name, voice) in enumerate((("piper", speak_piper), ("espeak", speak_espeak))):
        for a, b in PAIRS[:pairs]:
            whole = _speech(f"{a} {b}", voice)
            paused = _speech(a, voice) + b"\0" * (1000 * MS) + _speech(b, voice)
            pad = b"\0" * (300 * MS)
            clips.append((voice_name, _noisy(pad + whole + b"\0" * (2500 * MS), seed),
                          _noisy(pad + paused + b"\0" * (2500 * MS), seed + 10), (len(pad) + len(whole)) / MS))
    rows = []
    for detector in ("energy", "webrtc", "silero"):
        for smart in (False, True):
            cutoffs, commits = 0, []
            for _voice, whole, paused, end_ms in clips:
                ends = _run(whole, detector, smart)
                if ends:
                    commits.append(ends[0].closed_ms - end_ms)
                cutoffs += len(_run(paused, detector, smart)) > 1
            name = detector + (" + smart_turn" if smart else "")
            rows.append((name, f"false cut-offs {cutoffs}/{len(clips)} paused sentences; commit after "
                         f"p50 {statistics.median(commits):.0f} ms, max {max(commits):.0f} ms (n={len(commits)})"))
    return rows


if __name__ == "__main__":
    for name, figures in measure():
        print(f"| {name} | {figures} |")
