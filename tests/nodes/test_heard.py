"""What of a reply the user heard, from what was played: `played_part`, pure."""

from __future__ import annotations

from nodes.responder import played_part

PARTS = [("One two three four.", 2000.0), ("Five six seven eight.", 2000.0)]


def test_whole_parts_then_a_share_of_the_next() -> None:
    assert played_part(PARTS, 3000) == "One two three four. Five six [interrupted]"
    assert played_part(PARTS, 2000) == "One two three four. [interrupted]"
    assert played_part(PARTS, 500) == "One [interrupted]"


def test_nothing_played_is_nothing_heard_and_all_played_is_no_cut() -> None:
    assert played_part(PARTS, 0) == ""
    assert played_part(PARTS, 100) == ""  # not one whole word's share yet
    assert played_part(PARTS, 4000) is None
    assert played_part(PARTS, 9000) is None


def test_unknown_lengths_leave_it_to_the_pieces_sent() -> None:
    assert played_part([("No audio.", 0.0)], 100) is None
    assert played_part([], 100) is None
