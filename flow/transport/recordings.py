"""Recording identity: which recording each `start-recording`, `audio-stream` and `stop-recording` belongs to.

The client's events carry no identity, so the session numbers its recordings as the events arrive
(one counter per session, starting at 1, only growing) and stamps the number on every message it
builds. Nodes key their per-recording state by it: a decoder that still delivers the end of
recording n-1 after recording n began cannot mix the two.

    start-recording  → a new recording
    audio-stream     → the open recording; with none open (before any start, or after a stop) a new one
    stop-recording   → the open recording, now closed (or the last one, if none is open)
"""

from __future__ import annotations


class RecordingIds:
    """The recording numbers of one session."""

    def __init__(self) -> None:
        self.current = 0
        """The newest recording's number (0: none yet)."""
        self.open = False
        """Whether audio still goes to `current`."""

    def start(self) -> int:
        """`start-recording`: open a new recording (whatever was open is over)."""
        self.current += 1
        self.open = True
        return self.current

    def audio(self) -> int:
        """`audio-stream`: the open recording, opening an implicit new one if none is."""
        return self.current if self.open else self.start()

    def stop(self) -> int:
        """`stop-recording`: close the open recording; a repeated stop names the last one again."""
        self.open = False
        return self.current
