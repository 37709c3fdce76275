"""Sentence splitting for synthesis: abbreviations, decimals, no punctuation, overlong sentences."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

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


def test_cut_prefers_a_space_or_comma_within_the_limit() -> None:
    assert split_sentences("a bc de", 4) == ["a bc", "de"]
    assert split_sentences("one,two,three,four", 9) == ["one,two,", "three,", "four"]


def test_short_text_is_one_piece_and_blank_is_none() -> None:
    assert split_sentences("  Hello there. Bye.  ", 100) == ["Hello there. Bye."]
    assert split_sentences(" \n ", 10) == []
    with pytest.raises(ValueError):
        split_sentences("text", 0)


MIXED = [
    "Mr. and Mrs. Jones live at 12 St. James St. in Washington D.C. today. Ok.",
    'He said "Stop." Then, silence.\n\nNew paragraph here... Really?! Yes: 1. first 2. second',
    "Prices: $3.50, 4.5% off, see Fig. 3 (vs. last year), e.g. here; U.S.A. is big. i.e. huge.",
    "1. world. ?!",  # pysbd alone drops the trailing "?!"
]


@pytest.mark.parametrize("text", MIXED)
@pytest.mark.parametrize("limit", [12, 25, 80])
def test_no_word_or_mark_is_lost(text: str, limit: int) -> None:
    pieces = split_sentences(text, limit)
    assert all(0 < len(p) <= limit for p in pieces)
    assert " ".join(pieces).split() == text.split()


def test_threads_segmenting_at_once_do_not_mix_texts() -> None:
    # a shared pysbd Segmenter keeps the text on itself; threads once swapped each other's
    texts = [" ".join(f"Thread {t} says sentence {i}." for i in range(30)) for t in range(8)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(sentences, texts * 4))
    for text, found in zip(texts * 4, results, strict=True):
        assert " ".join(found) == text
