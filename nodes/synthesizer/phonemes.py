"""What Piper is asked to speak: the part of a text its voice can say, as bounded runs of phoneme ids.

Piper's model makes one run of phoneme ids (a sentence) at a time, and its memory grows with the
audio the run makes, about 0.4 MB per id (20 MB per second of speech), kept by onnxruntime's arena
afterwards. espeak reads what an English voice has no rules for letter by letter, by name: each
Chinese character becomes "Chinese letter", each Ethiopic one "Ethiopic letter" and its code point
in digits, each emoji its name; 500 of them made one unbroken sentence of 3,000-6,600 ids that
took gigabytes. So, before the model runs:
- characters the voice cannot say are dropped from what is spoken (the text itself is unchanged):
  letters and digits of scripts its language does not use (`SCRIPTS`), emoji and other symbols,
  control, format, private-use and unassigned code points;
- each sentence's phoneme ids are counted and a sentence over `max_ids` is cut at a word boundary
  (else a clause mark, else anywhere), so no run of the model exceeds `max_ids`;
- runs are packed into jobs of at most `max_ids` ids: one job is one turn on the shared CPU pool.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

BOS, EOS, PAD = "^", "$", "_"
_BREAKS = (" ",)
"""Phonemes after which a run may be cut (a word boundary)."""
_CLAUSE = (",", ";", ":", ".", "!", "?")
_DROPPED_CATEGORIES = {"So", "Cc", "Cf", "Cs", "Co", "Cn"}
"""Other symbols (emoji, dingbats), control, format (zero-width joiners), surrogates, private use,
unassigned."""
_KEPT_SYMBOLS = set("°©®")

_LANGUAGE_SCRIPTS = {
    "ARABIC": "ar fa ur ps sd ug",
    "CYRILLIC": "bg ru uk be mk sr kk ky tt ba mn cv",
    "GREEK": "el grc",
    "HEBREW": "he yi",
    "DEVANAGARI": "hi mr ne sa kok mai bh",
    "BENGALI": "bn as bpy",
    "GURMUKHI": "pa",
    "GUJARATI": "gu",
    "ORIYA": "or",
    "TAMIL": "ta",
    "TELUGU": "te",
    "KANNADA": "kn",
    "MALAYALAM": "ml",
    "SINHALA": "si",
    "THAI": "th",
    "LAO": "lo",
    "KHMER": "km",
    "MYANMAR": "my",
    "TIBETAN": "bo",
    "GEORGIAN": "ka",
    "ARMENIAN": "hy hyw",
    "ETHIOPIC": "am ti",
    "CJK": "zh cmn yue hak nan ja ko",
    "BOPOMOFO": "zh cmn",
    "HIRAGANA": "ja",
    "KATAKANA": "ja",
    "HANGUL": "ko",
}
SCRIPTS: dict[str, frozenset[str]] = {}
"""The scripts an espeak language reads besides Latin (which every voice reads); a language not
listed reads Latin only."""
for _script, _languages in _LANGUAGE_SCRIPTS.items():
    for _language in _languages.split():
        SCRIPTS[_language] = SCRIPTS.get(_language, frozenset()) | {_script}
_KNOWN = frozenset(_LANGUAGE_SCRIPTS) | {"LATIN"}
_WIDTH = ("FULLWIDTH", "HALFWIDTH")


def speakable_text(text: str, language: str = "en") -> str:
    """`text` without what a voice of espeak `language` (`en-us`) cannot say: letters and digits of
    other scripts, emoji and symbols, invisible and unassigned code points. Each run of dropped
    characters becomes one space; combining marks go with the letter they are on."""
    scripts = SCRIPTS.get(language.split("-")[0].lower(), frozenset()) | {"LATIN"}
    out: list[str] = []
    dropped = False
    for ch in text:
        if ch.isspace() or (_spoken_char(ch, scripts) and not (dropped and unicodedata.category(ch)[0] == "M")):
            out.append(ch)
            dropped = False
        elif not dropped:
            out.append(" ")
            dropped = True
    return "".join(out)


def _spoken_char(ch: str, scripts: frozenset[str]) -> bool:
    if ch.isascii():
        return ch.isprintable()
    cat = unicodedata.category(ch)
    if cat in _DROPPED_CATEGORIES:
        return ch in _KEPT_SYMBOLS
    if cat == "Sk" and ord(ch) > 0x2000:  # emoji skin-tone modifiers (the ASCII accents stay)
        return False
    if cat == "Mn" and (0xFE00 <= ord(ch) <= 0xFE0F or 0xE0100 <= ord(ch) <= 0xE01EF):
        return False  # variation selectors (emoji presentation)
    if cat[0] in "LN":
        words = unicodedata.name(ch, "").split()
        script = (words[1] if len(words) > 1 and words[0] in _WIDTH else (words or [""])[0]).split("-")[0]
        if cat[0] == "L":  # a letter of a script the language does not read ("MODIFIER LETTER …" is common)
            return script in scripts or script == "MODIFIER"
        return script not in _KNOWN or script in scripts  # other digits: ½, ² are common
    return True


def _has_sound(phonemes: Sequence[str]) -> bool:
    return any(p not in _CLAUSE and not p.isspace() for p in phonemes)


def run_ids(phonemes: Sequence[str], id_map: Mapping[str, Sequence[int]]) -> list[int]:
    """Piper's ids for one run: BOS, then each known phoneme followed by PAD, then EOS. Phonemes
    missing from the voice's map are skipped (Piper would log a warning for each)."""
    pad = list(id_map[PAD])
    ids = [*id_map[BOS], *pad]
    for p in phonemes:
        mapped = id_map.get(p)
        if mapped:
            ids += mapped
            ids += pad
    ids += id_map[EOS]
    return ids


def split_run(phonemes: Sequence[str], id_map: Mapping[str, Sequence[int]], max_ids: int) -> list[list[str]]:
    """Cut a sentence's phonemes so that each part's ids (`run_ids`) stay within `max_ids`: after the
    last word boundary that fits, else the last clause mark, else where the budget ends."""
    overhead = len(id_map[BOS]) + len(id_map[EOS]) + len(id_map[PAD])
    pad = len(id_map[PAD])
    costs = [len(id_map[p]) + pad if id_map.get(p) else 0 for p in phonemes]
    if max_ids < overhead + max(costs, default=0):
        raise ValueError(f"max_ids is too small for one phoneme: {max_ids}")
    parts: list[list[str]] = []
    start, n = 0, len(phonemes)
    while start < n:
        used, end, word, clause = overhead, start, 0, 0
        while end < n and used + costs[end] <= max_ids:
            used += costs[end]
            end += 1
            if phonemes[end - 1] in _BREAKS:
                word = end
            elif phonemes[end - 1] in _CLAUSE:
                clause = end
        cut = end if end == n else (word or clause or end)
        parts.append(list(phonemes[start:cut]))
        start = cut
    return [part for part in parts if _has_sound(part)]


def plan(sentences: Iterable[Sequence[str]], id_map: Mapping[str, Sequence[int]],
         max_ids: int) -> list[list[list[int]]]:
    """Jobs of runs of ids, in order: every run has at most `max_ids` ids, and so has every job
    (consecutive short sentences share one job, so a short reply is one job and one MP3)."""
    jobs: list[list[list[int]]] = []
    size = max_ids + 1
    for sentence in sentences:
        for part in split_run(sentence, id_map, max_ids):
            ids = run_ids(part, id_map)
            if size + len(ids) > max_ids:
                jobs.append([])
                size = 0
            jobs[-1].append(ids)
            size += len(ids)
    return jobs


def count_ids(jobs: Iterable[Iterable[Sequence[Any]]]) -> int:
    """All ids of a plan (tests and logs read it)."""
    return sum(len(run) for job in jobs for run in job)


def voice_phonemes(loaded: Any, text: str) -> list[list[str]]:
    """Phonemes per sentence of what a loaded `PiperVoice` can say of `text` (`speakable_text`)."""
    return loaded.phonemize(speakable_text(text, loaded.config.espeak_voice))
