"""`voicegraph bench --soak MINUTES`: many real-time sessions for a long while; does anything grow?

A real `voicegraph serve` (default graph, providers at the OpenAI-compatible stub so the figures are
voicegraph's own) serves N sessions that stream 40 ms PCM16 chunks paced at real time and talk at
random moments (a voice turn every ~20 s each, as in the capacity scenario). The server's RSS is
sampled every `SAMPLE_S`; the report compares the first sample after warm-up with the last and
the largest, and counts the turns answered and the tracebacks and ERROR lines the server logged.
Not for CI: a useful soak runs for tens of minutes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from flow.bench.procs import close_all, connect_many, rss_bytes, server_process
from flow.bench.turns import TURN_EVERY_S, Step, _stream, one_turn, question_pcm
from flow.testing.client import Recorder
from flow.testing.openai_stub import OpenAIStub

SAMPLE_S = 10.0
"""How often the server's memory is read."""
WARM_S = 60.0
"""Growth counts from the first sample this long after the sessions started streaming: the first
seconds of traffic fill the working set (each session's utterance being recorded, frames and
replies in flight, socket buffers: +7 MB at 100 sessions within 20 s), which is load, not growth.
The sample at 0 s (connected, idle) is still shown in the quarters row."""


@dataclass
class Soak:
    sessions: int
    minutes: float
    step: Step
    rss: list[tuple[float, int]] = field(default_factory=list)
    """(seconds into the soak, server RSS bytes)."""
    tracebacks: int = 0
    errors: int = 0

    @property
    def warm(self) -> int:
        """RSS bytes of the first sample at least `WARM_S` into the soak (the last one if none is)."""
        return next((b for t, b in self.rss if t >= WARM_S), self.rss[-1][1])

    @property
    def growth(self) -> float:
        """Last RSS sample over the warm one (`WARM_S`), as a fraction (0.05 = +5 %)."""
        return self.rss[-1][1] / self.warm - 1 if len(self.rss) > 1 else 0.0

    def at(self, fraction: float) -> int:
        """RSS bytes of the first sample at or after `fraction` of the soak's length."""
        end = self.rss[-1][0]
        return next(b for t, b in self.rss if t >= fraction * end)

    @property
    def late_growth(self) -> float:
        """Growth over the second half alone: what is left once every session's history window
        and the process's caches have filled (the first half holds that warm-up)."""
        return self.rss[-1][1] / self.at(0.5) - 1 if len(self.rss) > 1 else 0.0

    def rows(self) -> list[tuple[str, str, str]]:
        answered = [ms for ms in self.step.turns if ms != float("inf")]
        mb = [b / 2**20 for _, b in self.rss]
        where = (f"{self.sessions} real-time sessions for {self.minutes:g} min, a voice turn every "
                 f"~{TURN_EVERY_S:g} s each, stub providers")
        return [
            ("10 soak", f"{where}: turns answered", f"{len(answered)} of {len(self.step.turns)}"),
            ("10 soak", f"server RSS after {WARM_S:g} s of traffic → last sample (max), growth",
             f"{self.warm / 2**20:.0f} → {mb[-1]:.0f} MB (max {max(mb):.0f}), {100 * self.growth:+.1f} %"
             if mb else "no data"),
            ("10 soak", "server RSS at 0, 25, 50, 75, 100 % of the time; growth over the second half",
             " → ".join(f"{self.at(f) / 2**20:.0f}" for f in (0, 0.25, 0.5, 0.75, 1.0))
             + f" MB; {100 * self.late_growth:+.1f} %" if mb else "no data"),
            ("10 soak", "tracebacks / ERROR lines the server logged", f"{self.tracebacks} / {self.errors}"),
        ]


async def soak(minutes: float, sessions: int = 100) -> Soak:
    audio = question_pcm()
    seconds = minutes * 60
    async with OpenAIStub() as stub, server_process("default", stub) as srv:
        warm = await Recorder().connect(srv.url)
        await one_turn(warm, audio)
        await warm.close()
        result = Soak(sessions, minutes, Step(sessions))
        log_before = (srv.log.tracebacks, srv.log.errors)
        clients = await connect_many(srv.url, sessions)
        start = time.monotonic()

        async def sample() -> None:
            while True:
                result.rss.append((time.monotonic() - start, rss_bytes(srv.pid)))
                await asyncio.sleep(SAMPLE_S)

        sampler = asyncio.get_running_loop().create_task(sample())
        try:
            await asyncio.gather(*(_stream(c, result.step, seconds, TURN_EVERY_S, audio, i)
                                   for i, c in enumerate(clients)))
            await asyncio.gather(*result.step.pending)
        finally:
            sampler.cancel()
            await close_all(clients)
        result.rss.append((time.monotonic() - start, rss_bytes(srv.pid)))
        result.tracebacks = srv.log.tracebacks - log_before[0]
        result.errors = srv.log.errors - log_before[1]
    return result


def main(minutes: float, sessions: int) -> int:
    result = asyncio.run(soak(minutes, sessions))
    print("| scenario | measure | figures |\n| --- | --- | --- |")
    for row in result.rows():
        print("| " + " | ".join(row) + " |")
    return 0
