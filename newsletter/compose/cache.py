"""What the build keeps under `.newsletter/cache/` between processes: keys and atomic files.

Every entry is keyed by its input and a stamp of the code that derived it (`code_stamp`: the
tool's version and the files of the modules and libraries involved, by size and modification
time), so an edit or an upgrade finds no stale entry. Files are written whole (a temporary file
renamed over the old one: a reader sees one or the other); a cache that cannot be read is
treated as empty and one that cannot be written is no error. Folders whose entries follow
edits (one per version of a piece) keep the most recent few hundred (`prune`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import newsletter

CACHE = Path(".newsletter") / "cache"  # under the publication's root


def code_stamp(files: tuple[str | Path, ...], libraries: tuple[str, ...] = ()) -> str:
    """A stamp of the code behind an entry: the tool's version, Python's, each file's size and
    modification time, and those of each library's top module as installed."""
    stamps = [f"newsletter {newsletter.__version__}", f"python {sys.version}"]
    for origin in (*files, *(_origin(name) for name in libraries)):
        try:
            stat = os.stat(origin) if origin else None
        except OSError:
            stat = None
        stamps.append(f"{origin}:{stat.st_size}:{stat.st_mtime_ns}" if stat else f"{origin}:?")
    return "\0".join(stamps)


def _origin(module: str) -> str | None:
    """The file of an installed top-level module, found without importing it."""
    spec = importlib.util.find_spec(module)
    return spec.origin if spec else None


def key(*parts: str | bytes) -> str:
    """A file name's worth of digest of `parts`."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def prune(folder: Path, pattern: str, keep: int) -> None:
    """Delete all but the `keep` most recently written files matching `pattern` (entries of
    texts since edited are never read again)."""
    try:
        found = [(entry.stat().st_mtime_ns, entry) for entry in folder.glob(pattern)]
    except OSError:
        return
    if len(found) <= keep:
        return
    for _, old in sorted(found, key=lambda pair: pair[0])[:len(found) - keep]:
        old.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` whole: a reader sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(path: Path, data: bytes) -> None:
    """`write_atomic`, where a cache that cannot be written is no error."""
    try:
        write_atomic(path, data)
    except OSError:
        pass
