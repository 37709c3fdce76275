"""The reliability suite's figures: what issue 16's "Done when" asks for, measured by the tests.

Tests record what they measured into the `figures` fixture (their assertions stay theirs); the run
ends with one table, "reliability figures", after the test results, so a CI log shows them:

    figures.add("hostile inputs tried", 600)                     # counts are summed
    figures.record("dead-client cleanup", 0.4, unit="s", goal="≤ 10 s", part="socket reset")

A recorded value keeps the worst (largest) of what several tests or parameters measured, and
says each part's value beside it. "tracebacks per 1,000 hostile inputs" is worked out at the end
from the two counts the hostile tests add.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

INPUTS = "hostile inputs tried"
TRACEBACKS = "tracebacks logged for them"
ORDER = (INPUTS, "crashes", "tracebacks per 1,000 hostile inputs", "server memory after the fuzz vs before",
         "worst single-message memory growth", "worst single-message memory peak",
         "memory one connection holds with audio",
         "sessions or decoders left after reserved-name packets", "dead-client cleanup",
         "key found in a client payload, log line or /health", "flooder disconnected after")
"""The table's order (the issue's); figures it does not name follow."""


@dataclass
class Figure:
    name: str
    goal: str = ""
    unit: str = ""
    total: float | None = None
    """A count's sum."""
    parts: dict[str, float] = field(default_factory=dict)
    """A measured value's parts: the largest is the figure."""
    tests: set[str] = field(default_factory=set)

    def value(self) -> float:
        return self.total if self.total is not None else max(self.parts.values())

    def shown(self) -> str:
        v = self.value()
        text = f"{v:,.0f}" if float(v).is_integer() and self.unit != "s" else f"{v:,.2f}"
        text += f" {self.unit}" if self.unit else ""
        if len(self.parts) > 1:
            text += " (" + ", ".join(f"{k}: {p:,.1f}" for k, p in self.parts.items()) + ")"
        elif self.parts and next(iter(self.parts)):
            text += f" ({next(iter(self.parts))})"
        return text


class Figures:
    """What the tests of one run measured (the `figures` fixture)."""

    def __init__(self) -> None:
        self.figures: dict[str, Figure] = {}
        self.test = ""
        """The test recording now (set by the fixture)."""

    def _figure(self, name: str, goal: str, unit: str) -> Figure:
        fig = self.figures.setdefault(name, Figure(name))
        fig.goal = goal or fig.goal
        fig.unit = unit or fig.unit
        fig.tests.add(self.test)
        return fig

    def add(self, name: str, n: float, *, goal: str = "", unit: str = "") -> None:
        """Count `n` more of `name` (summed over the run)."""
        fig = self._figure(name, goal, unit)
        fig.total = (fig.total or 0) + n

    def hostile(self, inputs: int, tracebacks: int) -> None:
        """`inputs` hostile inputs were sent, and the log held `tracebacks` tracebacks meanwhile."""
        self.add(INPUTS, inputs, goal="a few thousand per run")
        self.add(TRACEBACKS, tracebacks)

    def record(self, name: str, value: float, *, goal: str = "", unit: str = "", part: str = "") -> None:
        """A measured `value` of `name`; with `part`, one of several (the figure is the largest)."""
        fig = self._figure(name, goal, unit)
        fig.parts[part] = max(value, fig.parts.get(part, value))

    def rows(self) -> list[tuple[str, str, str, str]]:
        figs = dict(self.figures)
        if INPUTS in figs:
            inputs, tracebacks = figs[INPUTS].value(), figs.pop(TRACEBACKS, Figure(TRACEBACKS, total=0)).value()
            per = Figure("tracebacks per 1,000 hostile inputs", "≤ 1", total=1000 * tracebacks / max(inputs, 1),
                         tests=figs[INPUTS].tests)
            per.unit = f"({tracebacks:.0f} in all)"
            figs[per.name] = per
        names = [n for n in ORDER if n in figs] + sorted(n for n in figs if n not in ORDER)
        out = []
        for name in names:
            fig = figs[name]
            tests = sorted(t for t in fig.tests if t)
            where = tests[0] + (f" +{len(tests) - 1}" if len(tests) > 1 else "") if tests else ""
            out.append((name, fig.shown(), fig.goal, where))
        return out


_FIGURES = pytest.StashKey[Figures]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_FIGURES] = Figures()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    """Record what this test measured; the run prints it in the "reliability figures" table."""
    figs = request.config.stash[_FIGURES]
    figs.test = request.node.name.split("[")[0]
    return figs


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    figs = config.stash.get(_FIGURES, None)
    if figs is None or not figs.figures:
        return
    rows = [("figure", "measured", "goal", "measured by"), *figs.rows()]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    terminalreporter.write_sep("=", "reliability figures")
    for i, row in enumerate(rows):
        terminalreporter.write_line("  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
        if i == 0:
            terminalreporter.write_line("  ".join("-" * w for w in widths) + "  " + "-" * 11)
