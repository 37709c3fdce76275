"""The `Cancel` messages of the interrupt gate, and how far back turns are stale.

A `Cancel` makes every turn up to `through_turn` stale wherever its work runs. It also carries an
interrupt's `playedMs` with the reply it names, since that cuts the LLM's history to what the user
heard — even when the reply is already over (nothing left to stop, the history still to cut) or
is an older one than the reply in flight (which goes on).
"""

from __future__ import annotations

from flow.contract.messages import Cancel


class Cancels:
    """The stale-turn mark of one session's gate, and the Cancels that move it or cut history."""

    def __init__(self, session: str) -> None:
        self.session = session
        self.through = 0
        """Every turn up to this one is stale."""

    def stale(self, through: int, why: str, response_id: str | None, played_ms: float | None) -> Cancel | None:
        """The Cancel making turns ≤ `through` stale; if they already are, one only to pass on an
        interrupt's `playedMs` for `response_id` (None: nothing to send)."""
        if through > self.through:
            self.through = through
            return Cancel(self.session, through, why, response_id, played_ms)
        if played_ms is not None and response_id is not None:
            return Cancel(self.session, through, why, response_id, played_ms)
        return None

    def cut_history(self, response_id: str, played_ms: float) -> Cancel:
        """A Cancel that makes nothing new stale, only cuts `response_id`'s history to `played_ms`."""
        return Cancel(self.session, self.through, "interrupt", response_id, played_ms)
