"""Speech to text through the OpenAI API (or any compatible server): a WAV upload per utterance."""

from __future__ import annotations

from flow.audio.formats import wav_bytes
from flow.contract.resources import Resources
from nodes.openai_client import openai_client, openai_settings
from nodes.openai_errors import provider_errors


class OpenAITranscriber:
    """`audio.transcriptions.create` with a per-call timeout (the SDK's default is 10 minutes)."""

    name = "openai"

    def __init__(self, resources: Resources, model: str = "whisper-1", timeout_s: float | None = None) -> None:
        self.resources = resources
        self.model = model
        self.timeout_s = timeout_s or openai_settings(resources).timeout_s

    async def transcribe(self, pcm: bytes, rate: int, width: int, channels: int, *,
                         language: str | None = None, owner: str | None = None) -> str:
        wav = wav_bytes(pcm, rate, width, channels)
        extra = {"language": language.split("-")[0]} if language else {}
        with provider_errors("transcription"):
            result = await openai_client(self.resources).audio.transcriptions.create(
                model=self.model, file=("turn.wav", wav, "audio/wav"), timeout=self.timeout_s, **extra,
            )
        return (getattr(result, "text", None) or "").strip()
