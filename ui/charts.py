"""ECharts options for the session view, built from a `SessionView` (pure functions, no UI)."""

from __future__ import annotations

from typing import Any

from ui.model import STAGE_LABELS, SessionView

FLOOR_DB = -70.0
"""Levels below this draw as silence on the meter and the timeline."""
BOT_DB = -35.0
"""How high the assistant's speech band is drawn (below the user's, so both show)."""


def meter(level_db: float) -> float:
    """dBFS → 0..1 for a level meter (FLOOR_DB and below is empty, 0 dBFS full)."""
    return max(0.0, min(1.0, (level_db - FLOOR_DB) / -FLOOR_DB))


def timeline(view: SessionView, now_ms: float, window_s: float = 30.0) -> dict[str, Any]:
    """Over the last `window_s` seconds: the input level (line), the user's speech (shaded band),
    the assistant's speech (a second band, as long as its audio plays) and interrupts (markers)."""
    points = [(round((t - now_ms) / 1000, 2), max(db, FLOOR_DB), speech)
              for t, db, speech in view.timeline if now_ms - t <= window_s * 1000]
    bot: list[list[float]] = []
    for start, end in view.bot_speech:
        if now_ms - end > window_s * 1000:
            continue
        bot += [[round(max(start - now_ms, -window_s * 1000) / 1000, 2), BOT_DB],
                [round(min(end - now_ms, 0) / 1000, 2), FLOOR_DB]]
    interrupts = [[round((t - now_ms) / 1000, 2), -3] for t in view.interrupts if now_ms - t <= window_s * 1000]
    return {
        "animation": False,
        "grid": {"left": 40, "right": 10, "top": 20, "bottom": 25},
        "legend": {"data": ["level dBFS", "speech", "bot speech", "interrupt"], "top": 0,
                   "textStyle": {"fontSize": 10}},
        "xAxis": {"type": "value", "min": -window_s, "max": 0, "name": "s"},
        "yAxis": {"type": "value", "min": FLOOR_DB, "max": 0},
        "series": [
            {"name": "level dBFS", "type": "line", "showSymbol": False,
             "data": [[x, db] for x, db, _ in points]},
            {"name": "speech", "type": "line", "step": "end", "showSymbol": False,
             "areaStyle": {"opacity": 0.25, "origin": "start"}, "lineStyle": {"width": 0},
             "data": [[x, 0 if speech else FLOOR_DB] for x, _, speech in points]},
            {"name": "bot speech", "type": "line", "step": "end", "showSymbol": False, "color": "#0d9488",
             "areaStyle": {"opacity": 0.3, "origin": "start"}, "lineStyle": {"width": 0}, "data": bot},
            {"name": "interrupt", "type": "scatter", "symbol": "triangle", "symbolSize": 10,
             "color": "#dc2626", "data": interrupts},
        ],
    }


def latencies(view: SessionView) -> dict[str, Any]:
    """One stacked bar per turn: end of speech → transcript → first token → first audio (ms)."""
    turns = view.stage_latencies()[-10:]
    labels = [f"turn {n}" + (" (cancelled)" if "cancelled" in spans else "") for n, spans in turns]
    return {
        "animation": False,
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0, "textStyle": {"fontSize": 10}},
        "grid": {"left": 110, "right": 20, "top": 30, "bottom": 25},
        "xAxis": {"type": "value", "name": "ms"},
        "yAxis": {"type": "category", "data": labels},
        "series": [
            {"name": label, "type": "bar", "stack": "turn",
             "data": [spans.get(stage, 0) for _, spans in turns]}
            for stage, label in STAGE_LABELS.items()
        ],
    }
