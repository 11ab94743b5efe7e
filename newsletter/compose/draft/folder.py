"""Writing a drafted issue folder all at once, and never over an editor's work.

The files are written to a staging folder under `.newsletter/drafts/`, which is then renamed
to `issues/SLUG/`: a failure or a kill leaves either the old folder or the new one, never half
of one. What was written is recorded (`.newsletter/drafts/SLUG.json`, a SHA-256 per file), so
a later draft of the same slug replaces the folder only while every file is as it was drafted;
otherwise it refuses unless forced, and a forced replacement keeps the edited folder under
`.newsletter/drafts/replaced/`. Drafts of one slug take turns (a lock file).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from newsletter.core.errors import InputError, Problem

DRAFTS = Path(".newsletter") / "drafts"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _files(folder: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under `folder`."""
    return {p.relative_to(folder).as_posix(): _digest(p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _record(root: Path, slug: str) -> Path:
    return root / DRAFTS / f"{slug}.json"


def edited_files(root: Path, slug: str) -> list[str] | None:
    """Files of issues/SLUG that differ from the draft written there (added, changed or
    removed); None when no draft of this slug was recorded."""
    try:
        written = json.loads(_record(root, slug).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    now = _files(root / "issues" / slug)
    return sorted(name for name in now.keys() | written.keys()
                  if now.get(name) != written.get(name))


def check_not_edited(root: Path, slug: str, force: bool) -> None:
    """`refuse_over_edits`, waiting for a draft of the slug being written to finish."""
    drafts = root / DRAFTS
    if not (root / "issues" / slug).exists():
        return
    drafts.mkdir(parents=True, exist_ok=True)
    with _locked(drafts / f"{slug}.lock"):
        refuse_over_edits(root, slug, force)


def refuse_over_edits(root: Path, slug: str, force: bool) -> None:
    """Raise InputError when issues/SLUG exists and is not an untouched draft (unless forced)."""
    folder = root / "issues" / slug
    if force or not folder.exists():
        return
    edited = edited_files(root, slug)
    hint = "pass --force to replace it (the old folder is kept under .newsletter/drafts/replaced/)"
    if edited is None:
        raise InputError(Problem(folder, None, f"this issue already exists and was not drafted "
                                               f"from a feed here; nothing done; {hint}"))
    if edited:
        raise InputError([Problem(folder / name, None, f"edited since it was drafted; nothing "
                                                       f"done; {hint}") for name in edited])


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_json(path: Path, data: object) -> None:
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(temp, path)


def write_issue_folder(root: Path, slug: str, files: dict[str, bytes], *, force: bool,
                       about: dict[str, str]) -> Path | None:
    """Put `files` (relative path -> bytes) in issues/SLUG/ at once, replacing an untouched
    earlier draft (or, with `force`, any folder); return where a replaced folder that had been
    edited is kept, else None. `about` goes into the record (feed URL, time)."""
    drafts = root / DRAFTS
    drafts.mkdir(parents=True, exist_ok=True)
    target = root / "issues" / slug
    with _locked(drafts / f"{slug}.lock"):
        for stale in drafts.glob(f".{slug}.new-*"):  # left by a draft that was killed
            shutil.rmtree(stale, ignore_errors=True)
        refuse_over_edits(root, slug, force)
        staging = Path(tempfile.mkdtemp(prefix=f".{slug}.new-", dir=drafts))
        try:
            os.chmod(staging, 0o755)
            for name, data in files.items():
                path = staging / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            target.parent.mkdir(parents=True, exist_ok=True)
            kept = _swap(root, slug, staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _write_json(_record(root, slug), {**about, "files": {n: _digest(d)
                                                             for n, d in sorted(files.items())}})
    return kept


def _swap(root: Path, slug: str, staging: Path, target: Path) -> Path | None:
    """Rename `staging` to `target`, moving an existing `target` aside first: kept under
    replaced/ when it had been edited, deleted when it was the untouched earlier draft."""
    if not target.exists():
        staging.rename(target)
        return None
    edited = edited_files(root, slug)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    if edited is None or edited:
        aside = root / DRAFTS / "replaced" / f"{slug}-{stamp}"
        aside.parent.mkdir(parents=True, exist_ok=True)
    else:
        aside = root / DRAFTS / f".{slug}.old-{stamp}"
    target.rename(aside)
    try:
        staging.rename(target)
    except BaseException:
        aside.rename(target)
        raise
    if edited is None or edited:
        return aside
    shutil.rmtree(aside, ignore_errors=True)
    return None
