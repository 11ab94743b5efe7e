"""Languages: direction, the chrome's words (a YAML catalogue per language) and dates via Babel.

Every word the template adds comes from `newsletter/data/strings/<lang>.yaml`; a publication
overrides single strings in newsletter.yaml (`strings: {ar: {follow: ...}}`). English is the
reference catalogue: every other shipped catalogue has exactly its keys (a test enforces it).

Babel is imported when it is needed. A build writes one date, and loading Babel with its locale
data for it is about a tenth of a cold build, so the dates a build formats are kept (`DAYS`: in
memory, and inside `DAYS.kept_in(folder)` in files under `.newsletter/cache/`).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.compose.memo import Memo
from newsletter.core.yamlsrc import load_plain

if TYPE_CHECKING:
    from babel import Locale

STRINGS_DIR = Path(__file__).resolve().parents[1] / "data" / "strings"
REFERENCE = "en"
#: languages written right to left (ISO 639 codes; a region suffix such as ar-EG is ignored)
RTL_LANGUAGES = frozenset({"ar", "fa", "he", "ur", "ps", "ckb", "yi"})
#: the first (zero) code point of the decimal digits of CLDR numbering systems
DIGIT_ZERO = {"arab": 0x0660, "arabext": 0x06F0, "deva": 0x0966, "beng": 0x09E6}
ARABIC_SCRIPT = frozenset({"ar", "fa", "ur", "ps", "ckb"})
HEBREW_SCRIPT = frozenset({"he", "yi"})
#: font stacks (serif body, sans chrome) and line height per script
FONTS = {
    "arabic": (
        "'Noto Naskh Arabic', 'Geeza Pro', 'Traditional Arabic', 'Times New Roman', serif",
        "'Noto Sans Arabic', Tahoma, 'Segoe UI', Arial, sans-serif",
        "1.8",
    ),
    "hebrew": (
        "'Noto Serif Hebrew', David, 'Times New Roman', serif",
        "'Noto Sans Hebrew', 'Arial Hebrew', Arial, sans-serif",
        "1.7",
    ),
    "latin": ("Georgia, 'Times New Roman', serif", "Arial, Helvetica, sans-serif", "1.6"),
}


def base_language(lang: str) -> str:
    """`ar-EG` -> `ar`, `pt_BR` -> `pt`."""
    return lang.replace("_", "-").split("-")[0].strip().lower()


def direction(lang: str, forced: str | None = None) -> str:
    """'rtl' or 'ltr' for a language, unless `forced`."""
    if forced:
        return forced
    return "rtl" if base_language(lang) in RTL_LANGUAGES else "ltr"


def fonts(lang: str) -> dict[str, str]:
    """{'serif', 'sans', 'line_height'} suited to the language's script."""
    code = base_language(lang)
    script = (
        "arabic" if code in ARABIC_SCRIPT else "hebrew" if code in HEBREW_SCRIPT else "latin"
    )
    serif, sans, line_height = FONTS[script]
    return {"serif": serif, "sans": sans, "line_height": line_height}


def shipped_languages() -> list[str]:
    """Languages with a catalogue in the package."""
    return sorted(p.stem for p in STRINGS_DIR.glob("*.yaml"))


@lru_cache(maxsize=32)
def catalogue(lang: str) -> dict[str, str]:
    """The shipped catalogue for `lang` (its base language), or {} when none ships."""
    path = STRINGS_DIR / f"{base_language(lang)}.yaml"
    if not path.is_file():
        return {}
    data = load_plain(path.read_text(encoding="utf-8")) or {}
    return {str(k): str(v) for k, v in data.items()}


def reference_keys() -> list[str]:
    return list(catalogue(REFERENCE))


def _overrides(overrides: dict[str, dict[str, str]] | None, lang: str) -> dict[str, str]:
    overrides = overrides or {}
    return {**overrides.get(base_language(lang), {}), **overrides.get(lang, {})}


def missing_strings(lang: str, overrides: dict[str, dict[str, str]] | None = None) -> list[str]:
    """Keys the chrome needs that neither the shipped catalogue nor the overrides give."""
    have = {**catalogue(lang), **_overrides(overrides, lang)}
    return [key for key in reference_keys() if key not in have]


def strings(lang: str, overrides: dict[str, dict[str, str]] | None = None) -> dict[str, str]:
    """The chrome's words for `lang`: shipped catalogue, then the publication's overrides.

    A key missing from both falls back to English (and `newsletter check` reports it).
    """
    return {**catalogue(REFERENCE), **catalogue(lang), **_overrides(overrides, lang)}


def _locale(lang: str) -> Locale:
    from babel import Locale, UnknownLocaleError

    try:
        return Locale.parse(lang.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse(base_language(lang)) if base_language(lang) != lang else Locale("en")


def native_digits(text: str, lang: str) -> str:
    """`text` with ASCII digits replaced by the language's native decimal digits, if any."""
    system = _locale(lang).other_numbering_systems.get("native", "latn")
    zero = DIGIT_ZERO.get(system)
    if zero is None:
        return text
    return text.translate({ord("0") + i: zero + i for i in range(10)})


DAYS = Memo("days", (__file__,), ("babel",))  # format_day's answers, kept per arguments


def format_day(day: dt.date, lang: str, pattern: str = "long", digits: str = "latin") -> str:
    """A date as the language writes it (Babel pattern from the catalogue), digits as asked."""
    arguments = "\0".join((day.isoformat(), lang, pattern, digits))
    return DAYS.get(arguments, "text", lambda: _format_day(day, lang, pattern, digits),
                    lambda text: isinstance(text, str))


def _format_day(day: dt.date, lang: str, pattern: str, digits: str) -> str:
    from babel import UnknownLocaleError
    from babel.dates import format_date

    try:
        text = format_date(day, pattern, locale=_locale(lang))
    except (UnknownLocaleError, ValueError):
        text = format_date(day, "long", locale="en")
    return native_digits(text, lang) if digits == "native" else text


def language_name(lang: str) -> str:
    """The language's name in itself: English, العربية, français."""
    from babel import UnknownLocaleError

    try:
        return _locale(lang).get_display_name(_locale(lang)) or lang
    except (UnknownLocaleError, ValueError):
        return lang
