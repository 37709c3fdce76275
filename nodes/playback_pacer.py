"""Send a streamed reply's pieces at playback speed, so the ones not yet heard can be cancelled.

In:  pieces: SpokenPiece, response: ReplyText, cancel: Cancel (control),
     tentative: UserTurn, turn: UserTurn (speculation)
Out: pieces: SpokenPiece, response: ReplyText

Synthesis is faster than speech, so without this node a whole reply sits in the client's player
within a second or two, and an interrupt finds nothing left to cancel: "what the user heard" is
then only "what was sent". Here the first piece of a reply goes at once and each next one when
the one before it has at most `lead_ms` left to play (counted from when it was sent; an MP3's
length from its bit rate), so a `Cancel` (the gate's, on an interrupt or barge-in) drops the
pieces not yet sent. The whole `response` (for old clients) follows its reply's last piece, in
order. Nothing is lost except for a cancelled turn: its queued pieces and response are dropped.

Speculation (`tentative` and `turn` wired from the turn taker): a tentative turn's reply is held
by the interrupt gate until the commit, so its clock must not start when its first piece is made:
that piece goes on at once (for the gate to hold and send at the commit), the rest wait here, and
the reply starts playing when its committed turn comes (when the gate releases it). Otherwise the
time between the speculation and the commit would count as played, and later pieces would reach
the client that much early (less left to cancel).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from reactivex import Observable
from reactivex.subject import Subject

from flow.audio.mp3 import mp3_seconds
from flow.contract.messages import Cancel, ReplyPiece, ReplyText, SpokenPiece, UserTurn
from flow.contract.node import In, Node, cancel_input


class PlaybackPacerParams(BaseModel):
    """`params:` of `type: playback_pacer`."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)
    lead_ms: int = Field(400, ge=0, le=60_000)
    """Send the next piece when the one before has at most this much left to play (covers the
    network and the client's decoding; more lead, less left to cancel)."""


def piece_seconds(piece: ReplyPiece) -> float:
    """How long a spoken piece plays (0 without audio)."""
    audio = piece.audio if isinstance(piece, SpokenPiece) else None
    return mp3_seconds(audio[:4096], len(audio)) if audio else 0.0


class PlaybackPacer(Node[PlaybackPacerParams]):
    """Hold each reply's next piece until the previous one has nearly played."""

    Params = PlaybackPacerParams
    inputs = {
        "pieces": In(ReplyPiece, doc="spoken reply pieces (from synthesizer.pieces)"),
        "response": In(ReplyText, required=False, doc="the whole spoken reply (from synthesizer.speech)"),
        "cancel": cancel_input(),
        "tentative": In(UserTurn, required=False,
                        doc="speculation (from turn_taker.tentative): its reply's first piece goes on to be "
                            "held by the gate, the rest wait for the commit"),
        "turn": In(UserTurn, required=False,
                   doc="speculation (from turn_taker.turn): a committed turn's held reply starts playing now"),
    }
    outputs = {"pieces": ReplyPiece, "response": ReplyText}
    output_docs = {"pieces": "each piece when the one before has lead_ms left to play (to interrupt_gate.pieces)",
                   "response": "the whole reply, after its last piece (to interrupt_gate.response)"}

    def wire(self, **inputs: Observable[Any]) -> dict[str, Observable[Any]]:
        self.out_pieces: Subject[ReplyPiece] = Subject()
        self.out_response: Subject[ReplyText] = Subject()
        self.queue: deque[ReplyPiece | ReplyText] = deque()
        self.reply_id: str | None = None
        self.plays_until = 0.0
        """Monotonic time the last piece sent finishes playing."""
        self.reply_turn = 0
        self.cancelled_through = 0
        self.ahead: int | None = None
        """The tentative turn not committed yet: its reply's clock has not started."""
        self.ahead_seconds = 0.0
        """How long the piece sent of the `ahead` turn's reply plays (its clock starts at the commit)."""
        self._sleeper: asyncio.Task | None = None
        self.route(inputs, {"pieces": self._on_msg, "response": self._on_msg, "cancel": self._on_cancel,
                            "tentative": self._on_tentative, "turn": self._on_commit})
        return {"pieces": self.out_pieces, "response": self.out_response}

    def _on_msg(self, msg: ReplyPiece | ReplyText) -> None:
        if msg.turn > self.cancelled_through:
            self.queue.append(msg)
            self._pump()

    def _on_tentative(self, t: UserTurn) -> None:
        self.ahead, self.ahead_seconds = t.turn, 0.0

    def _on_commit(self, t: UserTurn) -> None:
        if t.turn != self.ahead:
            return
        self.ahead = None
        if self.reply_turn == t.turn:  # its first piece went on to the gate: it plays from now
            self.plays_until = time.monotonic() + self.ahead_seconds
            self._pump()

    def _on_cancel(self, c: Cancel) -> None:
        self.cancelled_through = max(self.cancelled_through, c.through_turn)
        if self.ahead is not None and self.ahead <= c.through_turn:
            self.ahead = None
        dropped = [m for m in self.queue if m.turn <= c.through_turn]
        if dropped:
            self.ctx.count(self.id, "dropped", len(dropped))
            self.queue = deque(m for m in self.queue if m.turn > c.through_turn)
        if not self.queue and self._sleeper is not None:
            self._sleeper.cancel()
            self._sleeper = None

    def _pump(self) -> None:
        while self.queue:
            msg = self.queue[0]
            if isinstance(msg, ReplyPiece):
                if msg.turn == self.ahead:
                    if msg.id == self.reply_id:
                        return  # the rest of a tentative reply: its clock starts at the commit
                    self._send_ahead(msg)
                    continue
                now = time.monotonic()
                if msg.id != self.reply_id:  # a new reply starts playing now
                    self.reply_id, self.reply_turn, self.plays_until = msg.id, msg.turn, now
                wait = self.plays_until - self.params.lead_ms / 1000 - now
                if wait > 0:
                    if self._sleeper is None or self._sleeper.done():
                        self._sleeper = self.ctx.spawn(self._later(wait), name=f"{self.id}-pace")
                    return
                self.plays_until = max(now, self.plays_until) + piece_seconds(msg)
                self.queue.popleft()
                self.ctx.count(self.id, "out")
                self.out_pieces.on_next(msg)
            else:
                self.queue.popleft()
                self.out_response.on_next(msg)

    def _send_ahead(self, first: ReplyPiece) -> None:
        """A tentative reply's first piece: on to the gate (which holds it), no clock yet."""
        self.queue.popleft()
        self.reply_id, self.reply_turn, self.ahead_seconds = first.id, first.turn, piece_seconds(first)
        self.ctx.count(self.id, "out")
        self.out_pieces.on_next(first)

    async def _later(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._sleeper = None
        self._pump()
