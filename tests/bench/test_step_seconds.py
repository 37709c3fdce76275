"""A capacity step is long enough for 100 turns, so the p99 it is judged on is a real one.

`step_seconds` sizes a step from a model of the sessions (a renewal process each: a gap, then the
question); here the same sessions are drawn at random, as `turns._stream` draws them (PCM16: an
exponential gap; webm: one of the recordings' gaps, after a random arrival), and counted as the step counts its turns:
those whose question was out before the step ended.
"""

from __future__ import annotations

import random

import pytest

from flow.bench.turns import MIN_TURNS, QUESTION_S, TURN_EVERY_S, WEBM_ARRIVAL, WEBM_GAPS, step_seconds


def turns_in(seconds: float, sessions: int, codec: str, rng: random.Random) -> int:
    count = 0
    for _ in range(sessions):
        t = 0.0 if codec == "pcm16" else rng.uniform(0, WEBM_ARRIVAL * TURN_EVERY_S)  # its arrival
        while True:
            gap = rng.expovariate(1 / TURN_EVERY_S) if codec == "pcm16" else TURN_EVERY_S * rng.choice(WEBM_GAPS)
            t += gap + QUESTION_S
            if t > seconds:
                break
            count += 1
    return count


@pytest.mark.parametrize("codec", ["pcm16", "webm"])
@pytest.mark.parametrize("sessions", [50, 100, 150, 200, 300, 400])
def test_a_full_step_holds_100_turns_in_nineteen_of_twenty_runs(codec: str, sessions: int) -> None:
    seconds = step_seconds(sessions, 8.0, TURN_EVERY_S, MIN_TURNS, codec)
    rng = random.Random(sessions)
    counts = sorted(turns_in(seconds, sessions, codec, rng) for _ in range(200))
    assert counts[10] >= MIN_TURNS, (seconds, counts[:12])  # the 5th percentile


def test_a_step_is_never_shorter_than_asked() -> None:
    assert step_seconds(400, 30.0, TURN_EVERY_S) == 30.0
    assert step_seconds(5, 4.5, 0.5, min_turns=0) == 4.5
