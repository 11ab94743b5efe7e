"""Finding an article's author in the experts registry: exactly, then ignoring accents and case.

An author who matches nobody, or more than one expert, is never assigned: the caller gets the
closest expert ids to suggest instead.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from newsletter.compose.schema import Expert

CLOSE_ENOUGH = 0.6  # difflib ratio from which an expert is suggested
SUGGESTIONS = 3


@dataclass(frozen=True)
class AuthorMatch:
    """The expert id an author name matched (and how), or the closest ids to suggest."""

    author: str
    expert: str | None
    how: str  # "exact", "loose", "ambiguous" or "unknown"
    closest: tuple[str, ...] = ()


def loose(name: str) -> str:
    """`name` without accents (Latin diacritics, Arabic vowel marks and hamza forms), case,
    punctuation or extra spaces: "Tomás  Reyes" and "TOMAS REYES" are the same."""
    decomposed = unicodedata.normalize("NFKD", name)
    kept = "".join(c for c in decomposed
                   if not unicodedata.combining(c) and c != "\u0640")  # U+0640: tatweel
    words = re.sub(r"[^\w\s]|_", " ", kept.casefold())
    return " ".join(words.split())


def _names(experts: Mapping[str, Expert]) -> list[tuple[str, str]]:
    """(expert id, a name it goes by): its name and its name in each translation."""
    pairs = []
    for key, expert in experts.items():
        pairs.append((key, expert.name))
        pairs += [(key, words.name) for words in expert.translations.values() if words.name]
    return pairs


def match_author(author: str, experts: Mapping[str, Expert]) -> AuthorMatch:
    """Match `author` against the registry's names (and translated names)."""
    names = _names(experts)
    wanted = author.strip()
    exact = sorted({key for key, name in names if name.strip() == wanted})
    if len(exact) == 1:
        return AuthorMatch(author, exact[0], "exact")
    folded = loose(wanted)
    close = sorted({key for key, name in names if loose(name) == folded})
    if len(close) == 1 and not exact:
        return AuthorMatch(author, close[0], "loose")
    if exact or close:
        return AuthorMatch(author, None, "ambiguous", tuple(exact or close))
    return AuthorMatch(author, None, "unknown", closest_experts(folded, names))


def closest_experts(folded: str, names: list[tuple[str, str]]) -> tuple[str, ...]:
    """Up to three expert ids whose names look most like `folded`, best first."""
    scores: dict[str, float] = {}
    for key, name in names:
        ratio = difflib.SequenceMatcher(None, folded, loose(name)).ratio()
        scores[key] = max(ratio, scores.get(key, 0.0))
    ranked = sorted((-score, key) for key, score in scores.items() if score >= CLOSE_ENOUGH)
    return tuple(key for _, key in ranked[:SUGGESTIONS])


def slugify(text: str, limit: int = 64) -> str:
    """Lowercase Latin letters, digits and dashes from `text` ("" when it has none of them):
    "Tomás Reyes" -> "tomas-reyes"."""
    folded = loose(text).replace(" ", "-")
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]+", "", folded)).strip("-")[:limit].strip("-")
