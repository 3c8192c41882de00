"""Comparing OCR output with the ground truth."""

from __future__ import annotations


def normalize_text(text: str) -> str:
    """Collapse all whitespace (spaces, tabs, newlines) to single spaces and strip."""
    return " ".join(text.split())


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insert, delete, substitute; all cost 1).

    Bit-parallel (Myers 1999 / Hyyroe 2003): Python's big integers hold a
    whole column of the DP matrix, so a page of text takes milliseconds
    instead of seconds for the textbook O(n*m) loop.
    """
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    # b (the shorter) is the "pattern" whose column is held in one integer.
    positions: dict[str, int] = {}
    for i, char in enumerate(b):
        positions[char] = positions.get(char, 0) | (1 << i)
    mask = (1 << len(b)) - 1
    high = 1 << (len(b) - 1)
    vp, vn, distance = mask, 0, len(b)
    for char in a:
        eq = positions.get(char, 0)
        xv = eq | vn
        xh = ((((eq & vp) + vp) & mask) ^ vp) | eq
        hp = (vn | ~(xh | vp)) & mask
        hn = vp & xh
        if hp & high:
            distance += 1
        elif hn & high:
            distance -= 1
        hp = ((hp << 1) | 1) & mask
        hn = (hn << 1) & mask
        vp = (hn | ~(xv | hp)) & mask
        vn = hp & xv
    return distance


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate of `hypothesis` against `reference`.

    Both texts are whitespace-normalized first (normalize_text), so line
    breaks, runs of spaces and table-column gaps do not count; everything
    else (case, punctuation) does.  Returns edit distance / reference length
    (0.0 is perfect; can exceed 1.0 when the hypothesis is much longer).
    """
    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return levenshtein(ref, hyp) / len(ref)
