"""When each stage of the current turn happened, and the `turn-metrics` payload made of it.

The marks come on the turn's own messages (the turn taker's, each piece's) and from the gate
itself (first and last audio out, cancellation); every mark is also told to observers (the
dashboard). The payload says per turn whether it was answered ahead of its commit (`speculative`),
how many tentative turns before it were withdrawn (their provider work thrown away) and how much
sooner its work started than a committed turn's would have (`savedMs`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flow.contract.messages import UserTurn, now_ms

STAGES = ("speech_end", "speculated", "endpointed", "transcript", "accepted", "first_token", "first_audio",
          "last_token", "last_audio", "cancelled")


class TurnRecord:
    """The current turn's stage times and speculation, for its `turn-metrics`."""

    def __init__(self, notify: Callable[[str, float], None]) -> None:
        self.notify = notify
        """Tell observers a stage happened (`ctx.mark` for the current turn)."""
        self.marks: dict[str, float] = {}
        self.speculative = False
        """The current turn was answered ahead of its commit."""
        self.withdrawn = 0
        """Tentative turns withdrawn (their work thrown away) since the last turn that ended."""

    def start(self, t: UserTurn) -> None:
        self.marks = dict(t.marks)
        self.speculative = t.tentative

    def add(self, marks: Iterable[tuple[str, float]]) -> None:
        """Marks a message carries (a stage already known keeps its first time)."""
        self.marks.update((k, v) for k, v in marks if k not in self.marks)

    def mark(self, stage: str, at_ms: float | None = None) -> None:
        """Note a stage (first time only) and tell observers."""
        if stage not in self.marks:
            self.marks[stage] = float(now_ms()) if at_ms is None else at_ms
            self.notify(stage, self.marks[stage])

    def payload(self, turn: UserTurn, response_id: str | None, cancelled: bool) -> dict[str, Any]:
        """The `turn-metrics` of `turn` as it ends (and the withdrawn count starts again)."""
        marks = self.marks
        origin = marks.get("speech_end", marks.get("accepted"))
        payload: dict[str, Any] = {
            "id": turn.id,
            "responseId": response_id,
            "source": turn.source,
            "cancelled": cancelled,
            "speculative": self.speculative,
            "withdrawn": self.withdrawn,
            "ms": {k: round(marks[k] - origin, 1) for k in STAGES if k in marks and origin is not None},
        }
        if self.speculative and "speculated" in marks and "endpointed" in marks:
            payload["savedMs"] = round(max(0.0, marks["endpointed"] - marks["speculated"]), 1)
        self.withdrawn = 0
        return payload
