"""Two runs of one session's input, side by side: transcripts, user turns, replies, stage times.

A run is its outbound events (and, where known, its turns' stage times). The comparison is by
position: the n-th final transcript of one run beside the n-th of the other, the n-th user turn
beside the n-th. What `--expect-same-transcripts` checks is the list of final, non-empty
transcripts: the same words in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any

from flow.replay.recording import Event

SHOWN_STAGES = ("endpointed", "transcript", "first_token", "first_audio")


@dataclass
class Turn:
    """One user turn of a run: what started it and what came of it."""

    id: str
    source: str
    text: str
    reply: str = ""
    outcome: str = ""
    ms: dict[str, float] = field(default_factory=dict)


@dataclass
class Run:
    """What a run sent its client, as read from events (and turn records, when there are)."""

    transcripts: list[str]
    turns: list[Turn]

    def as_dict(self) -> dict[str, Any]:
        return {"transcripts": self.transcripts,
                "turns": [{"source": t.source, "text": t.text, "reply": t.reply, "outcome": t.outcome,
                           "ms": t.ms} for t in self.turns]}


def summarize(outbound: list[Event], turns: list[Event] = ()) -> Run:
    """The transcripts and turns of a run from its outbound events; `turns` are `turn` records
    (the stage times a graph that does not send `turn-metrics` still has in its recording)."""
    transcripts = [e.data.get("text", "") for e in outbound
                   if e.event == "speech-result" and isinstance(e.data, dict) and e.data.get("isFinal")
                   and e.data.get("text")]
    by_id: dict[str, Turn] = {}
    order: list[Turn] = []
    chunks: dict[str, list[str]] = {}
    for e in outbound:
        d = e.data if isinstance(e.data, dict) else {}
        if e.event == "message-received":
            turn = Turn(str(d.get("id")), str(d.get("source", "")), str(d.get("text", "")))
            by_id[turn.id] = turn
            order.append(turn)
        elif e.event == "ai-response" and d.get("replyTo") in by_id:
            by_id[d["replyTo"]].reply = str(d.get("text", ""))
        elif e.event == "ai-response-chunk" and d.get("replyTo") in by_id:
            chunks.setdefault(d["replyTo"], []).append(str(d.get("text", "")))
        elif e.event == "turn-metrics" and d.get("id") in by_id:
            _metrics(by_id[d["id"]], d, "cancelled" if d.get("cancelled") else "answered")
    for turn in order:
        if not turn.reply and turn.id in chunks:
            turn.reply = " ".join(p for p in chunks[turn.id] if p)
    for t in turns:
        d = t.data if isinstance(t.data, dict) else {}
        if d.get("id") in by_id:
            _metrics(by_id[d["id"]], d, t.event)
    return Run(transcripts, order)


def _metrics(turn: Turn, payload: dict[str, Any], outcome: str) -> None:
    turn.outcome = outcome
    ms = payload.get("ms") or {}
    turn.ms = {k: float(v) for k, v in ms.items() if isinstance(v, int | float)}


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def rows(recorded: Run, replayed: Run) -> list[tuple[bool, str, str, str]]:
    """`(differs, what, recorded, replay)` per transcript, turn, reply, outcome and stage time."""
    out: list[tuple[bool, str, str, str]] = []
    for i, (a, b) in enumerate(zip_longest(recorded.transcripts, replayed.transcripts), 1):
        out.append((a != b, f"transcript {i}", _quoted(a), _quoted(b)))
    for i, (a, b) in enumerate(zip_longest(recorded.turns, replayed.turns), 1):
        ta, tb = a or Turn("", "", ""), b or Turn("", "", "")
        left, right = f"{ta.source} {_quoted(ta.text if a else None)}", f"{tb.source} {_quoted(tb.text if b else None)}"
        out.append(((ta.source, ta.text) != (tb.source, tb.text), f"turn {i}", left, right))
        out.append((ta.reply != tb.reply, "  reply", _quoted(ta.reply), _quoted(tb.reply)))
        if ta.outcome or tb.outcome:
            out.append((ta.outcome != tb.outcome, "  outcome", ta.outcome or "—", tb.outcome or "—"))
        for stage in SHOWN_STAGES:
            if stage in ta.ms or stage in tb.ms:
                out.append((False, f"  {stage}", _ms(ta.ms.get(stage)), _ms(tb.ms.get(stage))))
    return out


def side_by_side(recorded: Run, replayed: Run, width: int = 44) -> str:
    """A plain-text table of both runs (`rows`); `≠` marks a difference."""
    def row(mark: bool, label: str, left: str, right: str) -> str:
        return f"{'≠' if mark else ' '} {label:13} {_cut(left, width):{width}}  {_cut(right, width)}"

    return "\n".join([row(False, "", "recorded", "replay"), *(row(*r) for r in rows(recorded, replayed))])


def _quoted(text: str | None) -> str:
    return "—" if text is None else repr(text)


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f} ms"


def transcript_differences(recorded: Run, replayed: Run) -> list[str]:
    """What differs between the two runs' final transcripts (empty: the same)."""
    out = []
    for i, (a, b) in enumerate(zip_longest(recorded.transcripts, replayed.transcripts), 1):
        if a != b:
            out.append(f"transcript {i}: recorded {a!r}, replay {b!r}")
    return out
