"""Safe file names from untrusted text (fax ids, sender fields), and folders and files made
with exact permissions: fax contents are personal data, so owner-only unless configured."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

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


def make_dirs(path: Path, mode: int = 0o700) -> Path:
    """Create `path` and its missing parents with exactly `mode`, whatever the umask.
    Folders that exist already are left as they are (an administrator may have set them)."""
    missing: list[Path] = []
    here = path
    while not here.exists() and here != here.parent:
        missing.append(here)
        here = here.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode)
        except FileExistsError:
            continue  # made meanwhile by another thread or process: theirs
        os.chmod(folder, mode)
    return path


def restrict(path: Path, mode: int = 0o600) -> None:
    """Set the mode of a file we own (a journal created by an older version, say)."""
    if path.exists() and not path.is_symlink():
        os.chmod(path, mode)
