"""Incremental decoding of one recording to canonical PCM as its chunks arrive: which decoder.

Raw PCM16 is only converted (`PcmConverter`), cheap enough to do inline. Opus in webm or ogg (what
browsers record) is demuxed and decoded in-process on a decoding thread (`flow.audio.opus`);
everything else (wav, mp3, webm/ogg of another codec) goes through an ffmpeg process
(`flow.audio.ffmpeg_decoder`). Either way the event loop only moves bytes.
"""

from __future__ import annotations

from flow.audio.demux import demuxer_for
from flow.audio.ffmpeg_decoder import FfmpegDecoder
from flow.audio.formats import PcmConverter
from flow.audio.opus import OpusDecoder
from flow.audio.stream_decoder import OnError, OnPcm, StreamDecoder
from flow.contract.messages import AudioFormat

__all__ = ["FfmpegDecoder", "OpusDecoder", "PcmDecoder", "StreamDecoder", "make_decoder"]


class PcmDecoder(StreamDecoder):
    """Raw s16le at any rate/channel count → canonical mono PCM, synchronously per chunk."""

    def __init__(self, rate: int, channels: int, target_rate: int, on_pcm: OnPcm, on_error: OnError):
        self._conv = PcmConverter(rate, channels, target_rate)
        self._on_pcm = on_pcm

    def feed(self, data: bytes) -> None:
        pcm = self._conv.convert(data)
        if pcm:
            self._on_pcm(pcm)

    async def finish(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def make_decoder(fmt: AudioFormat, target_rate: int, on_pcm: OnPcm, on_error: OnError) -> StreamDecoder:
    """The decoder for a recording in `fmt`, producing mono s16le at `target_rate`."""
    if fmt.container == "pcm16":
        return PcmDecoder(fmt.rate, fmt.channels, target_rate, on_pcm, on_error)
    demuxer = demuxer_for(fmt.container)
    if demuxer is not None:
        return OpusDecoder(fmt.container, demuxer, target_rate, on_pcm, on_error)
    return FfmpegDecoder(fmt.container, target_rate, on_pcm, on_error)
