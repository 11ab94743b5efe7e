"""Checks of single values the schemas share (addresses, URLs, one-line header values,
durations, language tags), and `Strict`, the base of every schema model."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

from pydantic import BaseModel, ConfigDict


def check_address(value: str) -> str:
    """Normalise an email address (syntax only, no DNS)."""
    from email_validator import EmailNotValidError, validate_email  # only when validating

    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not a valid email address: {exc}") from None


def split_addresses(raw: str) -> list[str]:
    """Addresses typed in one field: separated by commas, semicolons or spaces."""
    return [part for part in re.split(r"[\s,;]+", raw) if part]


def check_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError(f"{value!r} must be an absolute http(s) URL")
    return value


def check_one_line(value: str) -> str:
    """Refuse control characters (line breaks, tabs, ...): a header value is one line."""
    bad = next((c for c in value if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        name = {"\n": "a line break", "\r": "a carriage return", "\t": "a tab"}.get(
            bad, f"the control character U+{ord(bad):04X}")
        raise ValueError(f"must be one line of plain text, but it holds {name}")
    return value


_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(text: str) -> dt.timedelta:
    """`15m`, `1h`, `90s`, `1h30m` as a timedelta."""
    match = _DURATION.fullmatch(str(text).strip().lower())
    if not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration like 15m, 1h or 1h30m")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return dt.timedelta(hours=hours, minutes=minutes, seconds=seconds)


class Strict(BaseModel):
    """Base: extra keys are kept so they can be reported as warnings, not errors."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True, populate_by_name=True,
                              defer_build=True)  # built on first use (cached settings: never)


def check_language(value: str | None) -> str | None:
    """A BCP 47-style language tag: en, ar, pt-BR, zh-Hant (not a language name)."""
    if not value:
        return value  # empty: `newsletter check` reports it (accessibility.lang)
    parts = value.replace("_", "-").split("-")
    if not (2 <= len(parts[0]) <= 3 and parts[0].isalpha() and parts[0].isascii()) or not all(
        1 <= len(p) <= 8 and p.isalnum() and p.isascii() for p in parts[1:]
    ):
        raise ValueError(f"{value!r} is not a language tag such as en, ar or pt-BR")
    return value
