"""The subscriber model: statuses, the Subscriber record, and address and tag normalisation."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from email_validator import EmailNotValidError, validate_email


class Status(StrEnum):
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


#: Statuses an import (or a plain `add`) never turns back into `active`.
RETIRED = frozenset({Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED})

MAX_TAG_LENGTH = 100


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    name: str
    status: Status
    tags: tuple[str, ...]
    attributes: dict[str, Any]
    source: str
    created_at: dt.datetime
    updated_at: dt.datetime
    status_changed_at: dt.datetime

    @property
    def active(self) -> bool:
        return self.status == Status.ACTIVE


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def normalize_email(value: str) -> str:
    """Normalise an address with email-validator (syntax only, no DNS); ValueError if invalid."""
    value = value.strip()
    if not value:
        raise ValueError("no email address")
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"invalid email address {value!r}: {exc}") from None
    return result.normalized


def email_key(email: str) -> str:
    """The case-insensitive key that makes an address unique."""
    return email.lower()


def normalize_tag(value: str) -> str:
    """Tags are trimmed and lower-cased; ValueError when empty or too long."""
    tag = value.strip().lower()
    if not tag:
        raise ValueError("empty tag")
    if len(tag) > MAX_TAG_LENGTH:
        raise ValueError(f"tag {tag[:20]!r}... is longer than {MAX_TAG_LENGTH} characters")
    return tag


def split_tags(cell: str) -> set[str]:
    """Tags from a CSV cell: split on ';', empty parts ignored."""
    return {normalize_tag(part) for part in cell.split(";") if part.strip()}
