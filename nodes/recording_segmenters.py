"""One segmenter per recording, so late audio of an older recording never lands in a newer one.

Pure bookkeeping (no Rx, no clock), fed by the silence finalizer: starts, chunks and ends tagged
with their recording go in; segmenter events tagged with the recording and utterance they belong
to come out. State is bounded: a recording whose end never comes is flushed once more than
`max_open` recordings have state, oldest first, so nothing leaks and nothing is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from flow.contract.messages import new_id
from nodes.segmenter import Event, Segmenter, UtteranceEnd, Withdraw

MAX_OPEN = 4
"""Recordings with state at once: normally one or two (the one being uploaded, and the one before
it while its decoder drains)."""


@dataclass
class _Recording:
    id: int
    language: str | None = None
    voice: str | None = None
    segmenter: Segmenter | None = None
    utterance_id: str = field(default_factory=new_id)
    """The utterance in progress (SpeechStarted and its Utterance share it; a tentative utterance
    and its commit too)."""


@dataclass(frozen=True, slots=True)
class Tagged:
    """A segmenter event with the recording (and its `start-recording` options) it belongs to."""

    recording: int
    utterance_id: str
    rate: int
    language: str | None
    voice: str | None
    event: Event


class RecordingSegmenters:
    """Segmenters keyed by recording number; `make(rate)` builds one."""

    def __init__(self, make: Callable[[int], Segmenter], max_open: int = MAX_OPEN) -> None:
        self.make = make
        self.max_open = max_open
        self.open: dict[int, _Recording] = {}
        self.closed_through = 0
        """Recordings numbered ≤ this that are not open have ended: their late audio is ignored."""

    def start(self, recording: int, language: str | None, voice: str | None) -> list[Tagged]:
        """`start-recording`'s options for `recording` (its audio may come later, or never)."""
        rec, events = self._get(recording)
        if rec is not None:
            rec.language, rec.voice = language, voice
        return events

    def push(self, recording: int, pcm: bytes, rate: int) -> list[Tagged]:
        """Decoded audio of `recording`, to its own segmenter."""
        rec, events = self._get(recording)
        if rec is None:
            return events
        if rec.segmenter is None or rec.segmenter.rate != rate:
            rec.segmenter = self.make(rate)
        return events + self._tag(rec, rec.segmenter.push(pcm))

    def end(self, recording: int) -> list[Tagged]:
        """Every chunk of `recording` was pushed: close its utterance in progress, forget it."""
        self.closed_through = max(self.closed_through, recording)
        rec = self.open.pop(recording, None)
        if rec is None or rec.segmenter is None:
            return []
        return self._tag(rec, rec.segmenter.flush("stop"))

    def end_before(self, recording: int) -> list[Tagged]:
        """End every recording older than `recording` (when no end message will come)."""
        events: list[Tagged] = []
        for older in [n for n in self.open if n < recording]:
            events += self.end(older)
        return events

    def end_pause_at(self, utterance_id: str, after_ms: float) -> list[Tagged]:
        """Close the tentative utterance `utterance_id` after `after_ms` of pause (see Segmenter);
        nothing if it was withdrawn or closed meanwhile."""
        for rec in self.open.values():
            if rec.utterance_id == utterance_id and rec.segmenter is not None:
                return self._tag(rec, rec.segmenter.end_pause_at(after_ms))
        return []

    def segmenter(self, recording: int) -> Segmenter | None:
        rec = self.open.get(recording)
        return rec.segmenter if rec is not None else None

    def _get(self, recording: int) -> tuple[_Recording | None, list[Tagged]]:
        rec = self.open.get(recording)
        if rec is not None:
            return rec, []
        if recording <= self.closed_through:
            return None, []
        rec = self.open[recording] = _Recording(recording)
        events: list[Tagged] = []
        while len(self.open) > self.max_open:
            events += self.end(min(self.open))
        return rec, events

    def _tag(self, rec: _Recording, events: list[Event]) -> list[Tagged]:
        rate = rec.segmenter.rate if rec.segmenter is not None else 0
        tagged = []
        for ev in events:
            tagged.append(Tagged(rec.id, rec.utterance_id, rate, rec.language, rec.voice, ev))
            if isinstance(ev, UtteranceEnd | Withdraw):
                # a withdrawn tentative utterance is never committed: what follows gets a new id,
                # so a commit names exactly the audio its tentative utterance held
                rec.utterance_id = new_id()
        return tagged
