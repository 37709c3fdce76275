"""Sentence splitting for synthesis: abbreviations, decimals, no punctuation, overlong sentences."""

from __future__ import annotations

from nodes.text_split import sentences, split_sentences


def test_abbreviations_and_decimals_do_not_split() -> None:
    assert sentences("Dr. Smith paid $29.99, e.g. for a book. Then he left!") == [
        "Dr. Smith paid $29.99, e.g. for a book.", "Then he left!"]


def test_packing_respects_limit_and_keeps_words() -> None:
    text = "One. Two two. Three three three. " * 20
    pieces = split_sentences(text, 50)
    assert all(len(p) <= 50 for p in pieces)
    assert " ".join(pieces).split() == text.split()


def test_no_punctuation_and_overlong_sentence_cut_at_spaces() -> None:
    text = "word " * 100
    pieces = split_sentences(text, 42)
    assert all(len(p) <= 42 for p in pieces)
    assert " ".join(pieces).split() == text.split()


def test_unbreakable_token_is_cut_at_the_limit() -> None:
    assert split_sentences("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
