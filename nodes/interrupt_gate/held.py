"""What a tentative turn made, kept back at the interrupt gate until its commit.

Speculation answers a turn before the user has surely finished, so its reply pieces, its whole
reply and its failure (an LLM that failed) must not reach the client yet: the client has not even
been told of the turn. They wait here in order; at the commit they all go at once, and a withdrawn
or interrupted tentative turn drops them, as if they never happened.
"""

from __future__ import annotations

from collections import deque

from flow.contract.messages import NodeFailed, ReplyPiece, ReplyText

Held = ReplyText | ReplyPiece | NodeFailed

KEEP_UNSEEN = 16
"""Dropped tentative turns remembered, so a late failure of one is dropped too."""


class HeldWork:
    """The current turn's held messages: holding from its tentative start until its release."""

    def __init__(self) -> None:
        self.msgs: list[Held] | None = None
        """None: nothing is held (the turn is committed and what it made is out, or was never
        tentative)."""
        self.unseen: deque[int] = deque(maxlen=KEEP_UNSEEN)
        """Tentative turns dropped without the client ever hearing of them."""

    @property
    def holding(self) -> bool:
        return self.msgs is not None

    def start(self, tentative: bool) -> None:
        """A new current turn: hold what it makes if it is tentative."""
        self.msgs = [] if tentative else None

    def hold(self, msg: Held) -> bool:
        """Keep `msg` back while its turn is held (tentative, or committed until released)."""
        if self.msgs is None:
            return False
        self.msgs.append(msg)
        return True

    def take(self) -> list[Held]:
        """Everything held, in order, to send now (the commit); nothing is held after."""
        msgs, self.msgs = self.msgs or [], None
        return msgs

    def drop(self, turn: int) -> None:
        """The tentative `turn` is off: forget what it made, and it."""
        self.msgs = None
        self.unseen.append(turn)

    def never_seen(self, turn: int | None) -> bool:
        """`turn` was a tentative turn dropped before the client heard of it."""
        return turn is not None and turn in self.unseen
