"""Safe file names from untrusted text (fax ids, sender fields)."""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str, limit: int = 60) -> str:
    """A file name that cannot leave its folder, unique per input.

    Only ASCII letters, digits, dot, dash and underscore survive, no leading dot, at most
    `limit` characters, then a short hash of the original so two ids that clean up alike
    (``a/b`` and ``a_b``) never share a name.
    """
    clean = _UNSAFE.sub("_", text).lstrip(".")[:limit] or "x"
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{clean}-{digest}"


def safe_extension(ext: str) -> str:
    """A short lower-case alphanumeric file extension ("bin" if nothing is left)."""
    clean = "".join(c for c in ext.lower() if c.isascii() and c.isalnum())[:8]
    return clean or "bin"
