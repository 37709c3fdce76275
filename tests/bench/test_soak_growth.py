"""The soak's growth counts from the warm sample, not from the idle one before any traffic."""

from __future__ import annotations

from flow.bench.soak import WARM_S, Soak
from flow.bench.turns import Step

MB = 2**20


def soak(rss_mb: list[tuple[float, float]]) -> Soak:
    s = Soak(100, 30, Step(100))
    s.rss = [(t, int(mb * MB)) for t, mb in rss_mb]
    return s


def test_growth_is_from_the_first_sample_after_warm_up_to_the_last() -> None:
    s = soak([(0, 113), (20, 120), (WARM_S, 120), (600, 123), (1200, 123)])
    assert s.warm == 120 * MB
    assert round(100 * s.growth, 1) == 2.5
    assert s.rows()[2][2].startswith("113 → ")  # the idle sample is still shown


def test_a_soak_shorter_than_the_warm_up_compares_nothing() -> None:
    s = soak([(0, 113), (10, 118)])
    assert s.growth == 0.0
