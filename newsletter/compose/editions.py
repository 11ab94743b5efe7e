"""Editions: the same issue in several languages, tied by `translation_of:` / `translations:`.

An edition names the one it translates (`translation_of: 2026-11-24`), or the original lists
its translations (`translations: [2026-11-24-ar]`); either way every edition of the group
knows the others, so web copies link each other and `send --editions` picks one per reader.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import yaml

from newsletter.compose import i18n
from newsletter.compose.publication import Publication
from newsletter.core.yamlsrc import load_plain

# issue.yaml path -> (its text, its mapping or None): every build reads every issue's manifest,
# so an archive of many issues is parsed once per process and change, not once per build
_SEEN: dict[Path, tuple[str, dict | None]] = {}


@dataclass(frozen=True)
class Edition:
    """One language edition of an issue."""

    slug: str
    language: str

    @property
    def dir(self) -> str:
        return i18n.direction(self.language)


def _manifests(pub: Publication) -> dict[str, dict]:
    """slug -> raw issue.yaml mapping for every issue under issues/, messages such as the
    welcome too (its editions are its languages); unreadable ones skipped."""
    found: dict[str, dict] = {}
    for folder in pub.issue_folders(messages=True):
        data = _manifest(folder / "issue.yaml")
        if data is not None:
            found[folder.name] = data
    return found


def _manifest(path: Path) -> dict | None:
    """The mapping in an issue.yaml, or None when missing, unreadable or not a mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    seen = _SEEN.get(path)
    if seen is not None and seen[0] == text:
        return seen[1]
    try:
        data = load_plain(text)
    except yaml.YAMLError:
        data = None
    mapping = data if isinstance(data, dict) else None
    _SEEN[path] = (text, mapping)
    return mapping


def issue_manifests(pub: Publication) -> dict[str, dict]:
    """slug -> raw issue.yaml mapping of every issue under issues/ (unreadable ones left out),
    by slug; read once per process and change."""
    return dict(_manifests(pub))


def edition_group(pub: Publication, slug: str) -> list[Edition]:
    """Every edition of the issue `slug` (itself included), the original first.

    An issue with no translations is a group of one.
    """
    manifests = _manifests(pub)
    own = manifests.get(slug, {})
    original = _slug(own.get("translation_of")) or slug
    members = [original]
    listed = manifests.get(original, {}).get("translations")
    members += [_slug(s) for s in listed if _slug(s)] if isinstance(listed, list) else []
    members += [name for name, data in manifests.items()
                if _slug(data.get("translation_of")) == original]
    if slug not in members:
        members.append(slug)
    default = pub.config.language
    editions = []
    for name in dict.fromkeys(members):
        if name not in manifests:
            continue
        language = str(manifests[name].get("language") or default)
        editions.append(Edition(name, language))
    return editions


def _slug(value: object) -> str:
    """A slug as YAML gave it (an unquoted 2026-11-24 arrives as a date)."""
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value) if isinstance(value, str | int) else ""
