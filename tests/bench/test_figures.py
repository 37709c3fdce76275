"""How the bench writes a latency row: p99 only from 100 samples, the conditions in the row."""

from __future__ import annotations

from flow.bench.figures import conditions, latency_row, pct, spread


def test_below_100_samples_the_row_gives_the_maximum_not_a_p99() -> None:
    assert spread([float(v) for v in range(1, 100)]) == "n=99 p50=50 p90=89 max=99"


def test_from_100_samples_the_row_gives_p99() -> None:
    values = [float(v) for v in range(1, 101)]
    assert spread(values) == "n=100 p50=50 p90=90 p99=99"  # nearest rank: not the maximum (100)
    assert pct(values, 99) == 99


def test_no_samples_say_so() -> None:
    assert spread([]) == "no data"


def test_conditions_come_in_a_fixed_order_with_anything_else_after() -> None:
    text = conditions(sessions=10, think="2-4 s", codec="webm", stub="0 ms", reply="8 words", CPU="server 5%")
    assert text == "stub 0 ms; reply 8 words; codec webm; 10 sessions; think 2-4 s; CPU server 5%"
    assert conditions(sessions=1) == "1 session"


def test_a_floor_is_printed_as_ours_minus_floor_before_the_conditions() -> None:
    row = latency_row([1100.0, 1200.0, 1300.0], floor=1020.0, sessions=1)
    assert row == "n=3 p50=1200 p90=1300 max=1300 · ours - floor p50=180 (floor 1020) [1 session]"
