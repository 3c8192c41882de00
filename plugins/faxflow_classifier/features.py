"""What the model sees of a fax's text: words, word pairs and the letter groups of words.

OCR misreads letters (lnvoice, Dclivery, Rcferral), so whole words alone miss much of a
noisy fax; the groups of 3 to 5 letters inside each word (" inv", "nvoi", "voice") still
mostly match. Words and word pairs carry what letters cannot ("credit note" against
"invoice"). Digits all read as 0, so numbers, dates and amounts become a few shapes
("0000") rather than thousands of one-off features.

This is our own code rather than scikit-learn's vectorizers so that the model file holds
nothing but data, and a fax is featurized the same way in training and in the worker
(the worker does not need scikit-learn at all). Pure Python, no regex built from the text.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter

# OCR text is untrusted and may be long: only this much of a fax is read (about the first
# five pages; what a document is, its first pages say).
MAX_CHARS = 20_000
WORD_NGRAMS = (1, 2)
CHAR_NGRAMS = (3, 5)
WORD = "w:"  # feature prefixes: a word or word pair, and a letter group
CHARS = "c:"

_TOKEN = re.compile(r"[^\W_]{2,}")  # runs of letters and digits, 2 or more
_DIGITS = str.maketrans("123456789", "000000000")


def tokens(text: str) -> list[str]:
    """The words of (the first MAX_CHARS of) a text, case-folded, digits read as 0."""
    return _TOKEN.findall(text[:MAX_CHARS].casefold().translate(_DIGITS))


def features(text: str) -> Counter[str]:
    """Every feature of a text and how often it occurs."""
    return counts(tokens(text))


def counts(words: list[str]) -> Counter[str]:
    """Every feature of a text's words (`tokens`) and how often it occurs."""
    found: Counter[str] = Counter(WORD + w for w in words)
    found.update(f"{WORD}{a} {b}" for a, b in itertools.pairwise(words))
    for word, n in Counter(words).items():
        for gram in char_ngrams(word):
            found[gram] += n
    return found


def char_ngrams(word: str) -> list[str]:
    """The letter-group features of one word (as `features` makes them)."""
    padded = f" {word} "
    low, high = CHAR_NGRAMS
    return [CHARS + padded[start:start + size]
            for size in range(low, min(high, len(padded)) + 1)
            for start in range(len(padded) - size + 1)]


def settings() -> dict[str, object]:
    """What a model file records about the features, so a file made with others is refused."""
    return {"max_chars": MAX_CHARS, "word_ngrams": list(WORD_NGRAMS),
            "char_ngrams": list(CHAR_NGRAMS), "digits": "0"}
