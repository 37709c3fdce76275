"""Group speech frames into utterances, counting audio time only: a pure state machine.

Because it never looks at a clock, a client that uploads faster than real time gets exactly the
utterances a live microphone would, and the logic is tested without any I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from nodes.voice_activity import FrameDetector


@dataclass(frozen=True, slots=True)
class SpeechStart:
    """Speech confirmed (`min_speech_ms` of it); `timestamp_ms` is where it began, in audio time."""

    timestamp_ms: float


@dataclass(frozen=True, slots=True)
class UtteranceEnd:
    """A finished utterance: PCM with pre-roll and a short tail, and why it ended.

    Times are audio times since the recording began: `start_ms`/`end_ms` bound `audio`,
    `speech_end_ms` is where the last speech frame ended and `closed_ms` where the utterance was
    closed, so `closed_ms - speech_end_ms` is the endpointing wait (about `silence_ms` after silence).
    """

    audio: bytes
    reason: str  # silence | early | max_length | stop
    start_ms: float
    end_ms: float
    speech_ms: float
    speech_end_ms: float
    closed_ms: float


@dataclass(frozen=True, slots=True)
class Tentative:
    """A pause of `speculate_after_ms`: the utterance so far (all speech since the last commit),
    which the commit will confirm unless speech resumes first. Times as in `UtteranceEnd`."""

    audio: bytes
    start_ms: float
    speech_end_ms: float
    closed_ms: float


@dataclass(frozen=True, slots=True)
class Withdraw:
    """Speech resumed after a `Tentative`: it will not be committed (the utterance goes on)."""

    audio_ms: float


Event = SpeechStart | UtteranceEnd | Tentative | Withdraw


class Segmenter:
    """Push PCM, get `SpeechStart` / `UtteranceEnd` events; `flush()` on `stop-recording`.

    With `speculate_after_ms` (shorter than `silence_ms`), a pause that long in a confirmed
    utterance also gives a `Tentative` (once per pause), and speech resuming after it a `Withdraw`;
    the utterance itself goes on, so the next `Tentative` and the `UtteranceEnd` hold all of it.
    """

    def __init__(self, detector: FrameDetector, silence_ms: int = 700, min_speech_ms: int = 200,
                 max_utterance_ms: int = 30_000, pre_roll_ms: int = 300, tail_ms: int = 300,
                 rate: int = 16_000, speculate_after_ms: int = 0) -> None:
        self.detector = detector
        self.silence_ms = silence_ms
        self.speculate_after_ms = speculate_after_ms if 0 < speculate_after_ms < silence_ms else 0
        self.min_speech_ms = min_speech_ms
        self.max_utterance_ms = max_utterance_ms
        self.tail_ms = tail_ms
        self.rate = rate
        self.frame_ms = detector.frame_ms
        self._pre: deque[bytes] = deque(maxlen=max(1, pre_roll_ms // self.frame_ms))
        self.audio_ms = 0.0
        self._reset()

    def _reset(self) -> None:
        self.in_speech = False
        self._utt = bytearray()
        self._start_ms = 0.0
        self._speech_start_ms = 0.0
        self._speech_ms = 0.0
        self._silence_ms = 0.0
        self._confirmed = False
        self._tentative = False
        """A `Tentative` stands for the current pause (speech resuming withdraws it)."""
        self._early_ms: float | None = None
        """This pause closes the utterance after this much silence instead of `silence_ms` (sooner
        after a finished sentence, later after a hesitation)."""

    @property
    def level_dbfs(self) -> float:
        return self.detector.level_dbfs

    def push(self, pcm: bytes) -> list[Event]:
        events: list[Event] = []
        for frame, speech, _level in self.detector.frames(pcm):
            self.audio_ms += self.frame_ms
            if not self.in_speech:
                self._pre.append(frame)
                if speech:
                    self.in_speech = True
                    self._utt = bytearray(b"".join(self._pre))
                    self._pre.clear()
                    self._start_ms = self.audio_ms - len(self._utt) / (2 * self.rate) * 1000
                    self._speech_start_ms = self.audio_ms - self.frame_ms
                    self._speech_ms = self.frame_ms
                    self._confirm(events)
                continue
            self._utt += frame
            if speech:
                self._speech_ms += self.frame_ms
                self._silence_ms = 0.0
                self._confirm(events)
                if self._tentative:
                    self._tentative, self._early_ms = False, None
                    events.append(Withdraw(self.audio_ms))
            else:
                self._silence_ms += self.frame_ms
                self._speculate(events)
            limit = self.silence_ms if self._early_ms is None else self._early_ms
            if self._silence_ms >= limit:
                self._close("early" if limit < self.silence_ms else "silence", events)
            elif len(self._utt) / (2 * self.rate) * 1000 >= self.max_utterance_ms:
                self._close("max_length", events)
        return events

    def _confirm(self, events: list[Event]) -> None:
        if not self._confirmed and self._speech_ms >= self.min_speech_ms:
            self._confirmed = True
            events.append(SpeechStart(self._speech_start_ms))

    def end_pause_at(self, after_ms: float) -> list[Event]:
        """Close the tentative utterance of this pause once the pause reaches `after_ms` instead
        of `silence_ms` (now, if it already has): sooner when it looks finished, later when it
        sounds unfinished. Nothing happens without a tentative one standing."""
        events: list[Event] = []
        if self._tentative:
            self._early_ms = after_ms
            if self._silence_ms >= after_ms:
                self._close("early" if after_ms < self.silence_ms else "silence", events)
        return events

    def _speculate(self, events: list[Event]) -> None:
        if (self.speculate_after_ms and self._confirmed and not self._tentative
                and self.speculate_after_ms <= self._silence_ms < self.silence_ms):
            self._tentative = True
            audio, _end = self._trimmed()
            events.append(Tentative(audio, self._start_ms, self.audio_ms - self._silence_ms, self.audio_ms))

    def _trimmed(self) -> tuple[bytes, float]:
        """The utterance so far without trailing silence beyond `tail_ms`, and where it ends."""
        extra_ms = max(0.0, self._silence_ms - self.tail_ms)
        cut = int(extra_ms * self.rate / 1000) * 2
        return bytes(self._utt[: len(self._utt) - cut] if cut else self._utt), self.audio_ms - extra_ms

    def _close(self, reason: str, events: list[Event]) -> None:
        if self._confirmed:
            audio, end_ms = self._trimmed()
            events.append(UtteranceEnd(audio, reason, self._start_ms, end_ms,
                                       self._speech_ms, self.audio_ms - self._silence_ms, self.audio_ms))
        self._reset()

    def flush(self, reason: str = "stop") -> list[Event]:
        """Close the current utterance now (if it has enough speech) and start afresh."""
        events: list[Event] = []
        rest = self.detector.take_rest()
        if self.in_speech:
            self._utt += rest
            self._close(reason, events)
        self._pre.clear()
        self._reset()
        return events
