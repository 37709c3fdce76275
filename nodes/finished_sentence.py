"""Whether a transcript clearly ends a sentence: the text side of adaptive endpointing.

Used by the silence finalizer's `commit_early_ms`: a tentative transcript that ends a sentence
lets the pause commit sooner. It errs on the side of waiting: only terminal punctuation counts
(not an ellipsis), and never after a word that promises more.
"""

from __future__ import annotations

TRAILING = frozenset([
    "and", "or", "but", "so", "because", "then", "if", "um", "uh", "er", "erm", "hmm", "like", "well",
    "the", "a", "an", "to", "of", "with", "i", "my", "your",
])
"""Words after which a sentence is not finished, whatever the punctuation says."""


def sounds_finished(text: str) -> bool:
    """Terminal punctuation, and a last word that is not a conjunction, an article or a filler
    ("I want to go to the.", "Um." and "So..." are not finished)."""
    text = text.strip()
    if not text.endswith((".", "!", "?")) or text.endswith(("...", "\u2026")):
        return False
    words = text.rstrip(".!?").split()
    return bool(words) and words[-1].lower().strip(",;:\"'") not in TRAILING
