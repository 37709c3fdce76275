"""Cutting text into speakable pieces at sentence boundaries, never mid-word.

`pysbd` (rule-based sentence boundary detection) knows that "Dr.", "e.g." and "$29.99" do not end
sentences, which a regex on ". " gets wrong. Two of its traits are handled here: a `Segmenter`
keeps the text being split on itself (so each thread gets its own), and on odd input it can drop
characters (a trailing "?!"), so its result is checked and a plain punctuation split used instead.
"""

from __future__ import annotations

import re
import threading

import pysbd

_local = threading.local()
_LIST_MARKER = re.compile(r"(^|\s)\d{1,2}\.$")
"""A piece ending in "2." is a list item's number, not a sentence end."""
_FALLBACK = re.compile(r"(?<=[.!?\u3002\uff01\uff1f])\s+")
"""After sentence-ending punctuation (also the CJK full stop and fullwidth ! ?), whitespace."""
_CLAUSE_END = re.compile(r"[,;]\s+")
"""A clause boundary: a comma or semicolon with whitespace after it."""
_WORD = r"[^\W_]+(?:'[^\W_]+)*"
"""Letters and digits, apostrophes only inside ("don't"): a quoted 'sentence' may end one."""
_ONE_SENTENCE = re.compile(rf"[ \t,\-:]*(?:{_WORD}[ \t,\-:]+)*(?:{_WORD})?")
"""Text that cannot hold a sentence boundary: words, spaces, tabs, commas, hyphens and colons only
(no sentence punctuation, quote, bracket or line break; checked against pysbd in every language it
knows). Matched against the text before its last character, which may end the one sentence."""
_ONE_SENTENCE_COLON_ENDS = re.compile(rf"[ \t,\-]*(?:{_WORD}[ \t,\-]+)*(?:{_WORD})?")
"""The same where pysbd ends a sentence at a colon (Arabic, Persian; the Armenian full stop)."""
_COLON_ENDS = frozenset({"ar", "fa", "hy"})


def _segmenter(language: str) -> pysbd.Segmenter:
    cache: dict[str, pysbd.Segmenter] = _local.__dict__.setdefault("segmenters", {})
    if language not in cache:
        cache[language] = pysbd.Segmenter(language=language, clean=False)
    return cache[language]


def _letters(parts: list[str] | str) -> str:
    return "".join("".join(parts).split())


def sentences(text: str, language: str = "en") -> list[str]:
    """The sentences of `text`, stripped, empty ones dropped; every non-space character is kept."""
    found = _segmenter(language).segment(text)
    if _letters(found) != _letters(text):
        found = _FALLBACK.split(text)
    return [s.strip() for s in found if s.strip()]


def split_sentences(text: str, max_chars: int, language: str = "en") -> list[str]:
    """Sentences packed greedily into pieces of at most `max_chars`.

    A sentence longer than that is cut at the last space or comma within the limit; only a single
    word longer than `max_chars` is ever cut inside (there is no better place).
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    if len(text) <= max_chars:  # the common short reply: one piece, no segmentation cost
        return [text.strip()] if text.strip() else []
    pieces: list[str] = []
    current = ""
    for sentence in sentences(text, language):
        while len(sentence) > max_chars:
            cut = max(sentence.rfind(" ", 0, max_chars + 1), sentence.rfind(",", 0, max_chars) + 1)
            if cut <= 0:
                cut = max_chars
            head, sentence = sentence[:cut].strip(), sentence[cut:].strip()
            if current:
                pieces.append(current)
                current = ""
            pieces.append(head)
        if current and len(current) + 1 + len(sentence) > max_chars:
            pieces.append(current)
            current = ""
        current = f"{current} {sentence}".strip()
    if current:
        pieces.append(current)
    return pieces


class SentenceStream:
    """Cut a token stream into speakable sentences as soon as each is surely complete.

    A sentence is released only when pysbd sees a *following* sentence begin, so "Dr." or "$29."
    at the end of the text so far never ends a piece early; `min_chars` keeps very short pieces
    ("Yes.") together with the next, and `max_chars` cuts a run-on sentence at a space.

    With `first_clause_words`, the *first* piece may end sooner, at a comma followed by a space
    after at least that many words ("Sure, …" is too short; "The weather in Paris today," is
    not), so the first synthesis starts before the first sentence is done; later pieces stay
    sentences. A comma inside a number ("1,000") is never followed by a space, so never cut.
    """

    def __init__(self, min_chars: int = 20, max_chars: int = 300, language: str = "en",
                 first_clause_words: int = 0) -> None:
        self.min_chars = min_chars
        self.max_chars = max_chars
        self.language = language
        self.first_clause_words = first_clause_words
        self._text = ""
        self._released = False

    def push(self, token: str) -> list[str]:
        """Add streamed text; return the pieces now complete."""
        pieces = self._push(token)
        self._released = self._released or bool(pieces)
        return pieces

    def _first_clause(self) -> list[str]:
        """The first piece up to a comma after enough words, if the text has one yet."""
        for match in _CLAUSE_END.finditer(self._text):
            head = self._text[: match.start() + 1].strip()
            if len(head.split()) >= self.first_clause_words:
                self._text = self._text[match.end():]
                return [head]
        return []

    def _push(self, token: str) -> list[str]:
        self._text += token
        # pysbd on every token was most of a reply's CPU in our code; a text with no punctuation
        # (but a last character) is one sentence, and most tokens leave the text so.
        plain = _ONE_SENTENCE_COLON_ENDS if self.language in _COLON_ENDS else _ONE_SENTENCE
        one = plain.fullmatch(self._text.rstrip()[:-1])
        parts = [self._text] if one else sentences(self._text, self.language)
        if len(parts) < 2 and self.first_clause_words and not self._released:
            return self._first_clause() or self._push_sentences(parts)
        return self._push_sentences(parts)

    def _push_sentences(self, parts: list[str]) -> list[str]:
        if len(parts) < 2:
            if len(self._text) > self.max_chars:
                return self._cut_long()
            return []
        ready: list[str] = []
        piece = ""
        for sentence in parts[:-1]:
            piece = f"{piece} {sentence}".strip()
            if len(piece) >= self.min_chars and not _LIST_MARKER.search(piece):
                ready.append(piece)
                piece = ""
        if ready:
            self._text = self._after(ready)
        return ready

    def _after(self, ready: list[str]) -> str:
        """The text left once `ready` pieces (in order) are taken from the front."""
        rest = self._text
        for piece in ready:
            for word in piece.split():
                idx = rest.find(word)
                rest = rest[idx + len(word):] if idx >= 0 else rest
        return rest.lstrip()

    def _cut_long(self) -> list[str]:
        cut = self._text.rfind(" ", 0, self.max_chars)
        if cut <= 0:
            cut = self.max_chars
        piece, self._text = self._text[:cut].strip(), self._text[cut:].lstrip()
        return [piece] if piece else []

    def flush(self) -> list[str]:
        """The end of the stream: whatever is left is the last piece."""
        rest, self._text = self._text.strip(), ""
        self._released = False
        return [rest] if rest else []
