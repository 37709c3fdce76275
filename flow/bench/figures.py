"""How a latency row reads: one place, so every row states its sample size and conditions alike.

A reader decides from BENCHMARKS.md whether voicegraph fits a load, so a row must not claim more
than it measured: p99 is printed only from ≥ 100 samples (with nearest rank, the p99 of 50 values
is their maximum), otherwise the row says "max"; and the conditions that shape the figure (the
stub's latencies, the reply's length, the codec, how many sessions, the think time) are in the row.
"""

from __future__ import annotations

import statistics

P99_MIN_N = 100
"""Fewest samples a p99 is printed from; below it the row gives the maximum instead."""


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def _num(v: float, digits: int) -> str:
    return f"{v:.{digits}f}"


def spread(values: list[float], digits: int = 0) -> str:
    """`n=… p50=… p90=… p99=…` (n ≥ 100) or `n=… p50=… p90=… max=…` (fewer)."""
    if not values:
        return "no data"
    tail = (f"p99={_num(pct(values, 99), digits)}" if len(values) >= P99_MIN_N
            else f"max={_num(max(values), digits)}")
    return (f"n={len(values)} p50={_num(statistics.median(values), digits)} "
            f"p90={_num(pct(values, 90), digits)} {tail}")


def conditions(*, stub: str | None = None, reply: str | None = None, codec: str | None = None,
               sessions: int | None = None, think: str | None = None, **more: object) -> str:
    """The conditions of a row, in a fixed order: `stub …; reply …; codec …; N sessions; think …`."""
    parts = []
    if stub is not None:
        parts.append(f"stub {stub}")
    if reply is not None:
        parts.append(f"reply {reply}")
    if codec is not None:
        parts.append(f"codec {codec}")
    if sessions is not None:
        parts.append(f"{sessions} session{'s' if sessions != 1 else ''}")
    if think is not None:
        parts.append(f"think {think}")
    parts += [f"{k.replace('_', ' ')} {v}" for k, v in more.items()]
    return "; ".join(parts)


def latency_row(values: list[float], digits: int = 0, floor: float | None = None, **conds: object) -> str:
    """The figures cell of a latency row: spread, then `ours - floor` when a floor is given, then
    the conditions in brackets."""
    text = spread(values, digits)
    if floor is not None and values:
        text += f" · ours - floor p50={_num(statistics.median(values) - floor, digits)} (floor {floor:.0f})"
    cond = conditions(**conds)  # type: ignore[arg-type]
    return f"{text} [{cond}]" if cond else text


def reply_words(text: str) -> str:
    """A reply's length as the rows state it."""
    return f"{len(text.split())} words / {len(text)} chars"
