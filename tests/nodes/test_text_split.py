"""Sentence splitting for synthesis: abbreviations, decimals, no punctuation, overlong sentences."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodes.text_split import SentenceStream, sentences, split_sentences


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


def stream_pieces(text: str, step: int = 3, **kw) -> list[str]:
    from nodes.text_split import SentenceStream

    s = SentenceStream(**kw)
    out: list[str] = []
    for i in range(0, len(text), step):
        out += s.push(text[i:i + step])
    return out + s.flush()


def test_stream_keeps_abbreviations_and_prices_together() -> None:
    text = "Dr. Smith paid $29.99 for it, e.g. a book about Rome. Then he went home to rest."
    assert stream_pieces(text, min_chars=10) == [
        "Dr. Smith paid $29.99 for it, e.g. a book about Rome.", "Then he went home to rest."]


def test_stream_does_not_end_a_piece_on_a_list_number() -> None:
    text = "You need three things: 1. flour 2. water 3. salt. That is all."
    pieces = stream_pieces(text, min_chars=5)
    assert all(not p.endswith((" 1.", " 2.", " 3.")) and p not in ("1.", "2.", "3.") for p in pieces)
    assert " ".join(pieces).split() == text.split(" ")


def test_stream_without_punctuation_is_cut_at_spaces() -> None:
    text = "and then we walked along the river " * 20
    pieces = stream_pieces(text, max_chars=80)
    assert all(len(p) <= 80 for p in pieces) and len(pieces) > 5
    assert " ".join(pieces).split() == text.split()


def test_stream_one_very_long_sentence() -> None:
    text = "This " + "very " * 200 + "long sentence ends here."
    pieces = stream_pieces(text, step=7, max_chars=120)
    assert all(len(p) <= 120 for p in pieces)
    assert " ".join(pieces).split() == text.split()


def test_stream_releases_a_sentence_only_once_the_next_begins() -> None:
    from nodes.text_split import SentenceStream

    s = SentenceStream(min_chars=5)
    assert s.push("The price is $29.") == []  # could still be $29.99
    assert s.push("99 today.") == []
    assert s.push(" Next") == ["The price is $29.99 today."]
    assert s.flush() == ["Next"]


def test_first_piece_may_end_at_a_clause_later_ones_are_sentences() -> None:
    text = ("Well, the weather in Paris today is mild, with a light breeze from the west. "
            "Tomorrow brings rain, so take an umbrella, and a coat. That is all.")
    pieces = stream_pieces(text, step=3, first_clause_words=4)
    assert pieces[0] == "Well, the weather in Paris today is mild,"  # "Well," alone is too short
    assert pieces[1] == "with a light breeze from the west."
    assert pieces[2] == "Tomorrow brings rain, so take an umbrella, and a coat."
    assert " ".join(pieces).split() == text.split()
    whole = "Well, the weather in Paris today is mild, with a light breeze from the west."
    assert stream_pieces(text, step=3)[0] == whole


def test_first_clause_never_cuts_a_number_or_a_short_opening() -> None:
    text = "It costs 1,000 dollars and 250,000 cents in all. Yes."
    assert stream_pieces(text, step=2, first_clause_words=3)[0] == "It costs 1,000 dollars and 250,000 cents in all."
    text = "Sure, I can. The answer is forty two, as always."
    assert stream_pieces(text, step=2, first_clause_words=4)[0] != "Sure,"  # too few words


@settings(max_examples=80, deadline=None)
@given(text=st.lists(st.sampled_from(["ab", "a,", "b.", "a;", "1,000", "b?", "ba"]), max_size=30).map(" ".join),
       step=st.integers(1, 9), words=st.integers(1, 6))
def test_first_clause_keeps_every_word(text: str, step: int, words: int) -> None:
    assert " ".join(stream_pieces(text, step=step, first_clause_words=words)).split() == text.split()


class _PysbdOnEveryToken(SentenceStream):
    """The stream as it was before its shortcut: pysbd on the whole text at every token."""

    def _push(self, token: str) -> list[str]:
        self._text += token
        parts = sentences(self._text, self.language)
        if len(parts) < 2 and self.first_clause_words and not self._released:
            return self._first_clause() or self._push_sentences(parts)
        return self._push_sentences(parts)


TRICKY = ["hello", "Dr.", "I", "2.", "U.S.", "b:", "3:30", "日本。", "Mr.", "e.g.", "x.", "no!", "why?",
          '"quoted"', "'quoted'", "(a)", "don't", "end.\n", "$29.99", "yes,", "1,000", "a-b", "ok;", "\t", "'"]


@settings(max_examples=150, deadline=None)
@given(tokens=st.lists(st.tuples(st.sampled_from(["", " "]), st.sampled_from(TRICKY)).map("".join), max_size=25),
       language=st.sampled_from(["en", "de", "ar", "fa", "hy", "el", "ja", "hi"]),
       min_chars=st.sampled_from([1, 20]), first_clause_words=st.sampled_from([0, 3]))
def test_skipping_pysbd_on_plain_text_changes_no_piece(tokens: list[str], language: str, min_chars: int,
                                                       first_clause_words: int) -> None:
    """pysbd runs only once the text has punctuation that could end a sentence (a colon counts
    where it ends one); the pieces are those of pysbd on every token."""
    kw = {"min_chars": min_chars, "max_chars": 60, "language": language, "first_clause_words": first_clause_words}
    fast, slow = SentenceStream(**kw), _PysbdOnEveryToken(**kw)
    assert [fast.push(t) for t in tokens] + [fast.flush()] == [slow.push(t) for t in tokens] + [slow.flush()]
