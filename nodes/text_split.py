"""Cutting text into speakable pieces at sentence boundaries, never mid-word.

`pysbd` (rule-based sentence boundary detection) knows that "Dr.", "e.g." and "$29.99" do not end
sentences, which a regex on ". " gets wrong.
"""

from __future__ import annotations

import functools

import pysbd


@functools.cache
def _segmenter(language: str) -> pysbd.Segmenter:
    return pysbd.Segmenter(language=language, clean=False)


def sentences(text: str, language: str = "en") -> list[str]:
    """The sentences of `text`, stripped, empty ones dropped."""
    return [s.strip() for s in _segmenter(language).segment(text) if s.strip()]


def split_sentences(text: str, max_chars: int, language: str = "en") -> list[str]:
    """Sentences packed greedily into pieces of at most `max_chars`; an overlong sentence is cut
    at the last space or comma before the limit."""
    pieces: list[str] = []
    current = ""
    for sentence in sentences(text, language):
        while len(sentence) > max_chars:
            cut = max(sentence.rfind(" ", 0, max_chars), sentence.rfind(",", 0, max_chars) + 1)
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
