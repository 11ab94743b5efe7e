"""The subscriber model: statuses, the Subscriber record, and address and tag normalisation."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
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
    paused_until: dt.datetime | None = None
    consented_at: dt.datetime | None = None  # the last confirmed sign-up

    @property
    def ascii_email(self) -> str:
        """The address with its domain in ASCII (IDNA) form, for transports."""
        return ascii_email(self.email)

    @property
    def ascii_local_part(self) -> bool:
        """False when the part before @ is not ASCII: only SMTPUTF8 servers take it."""
        return self.email.rpartition("@")[0].isascii()

    @property
    def active(self) -> bool:
        return self.status == Status.ACTIVE

    def paused(self, now: dt.datetime | None = None) -> bool:
        """Whether a pause keeps this subscriber out of every segment at `now`."""
        return self.paused_until is not None and self.paused_until > (now or utcnow())


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@([A-Za-z0-9.-]+)", re.ASCII)


@lru_cache(maxsize=4096)
def _domain(domain: str) -> str:
    """A domain validated and normalised by email-validator, once per distinct domain."""
    return validate_email(f"postmaster@{domain}", check_deliverability=False).domain


def normalize_email(value: str) -> str:
    """Normalise an address with email-validator (syntax only, no DNS); ValueError if invalid.

    Plain ASCII addresses (dot-atom local part) take a fast path that gives email-validator's
    own result: the local part as written, the domain as email-validator normalises it
    (validated once per domain). Everything else goes through `validate_email` in full.
    """
    value = value.strip()
    if not value:
        raise ValueError("no email address")
    plain = _PLAIN.fullmatch(value)
    if plain:
        local = value[: plain.start(1) - 1]
        try:
            address = f"{local}@{_domain(plain.group(1))}"
        except EmailNotValidError:
            address = ""
        if address and len(local) <= 64 and len(address) <= 254:
            return address
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"invalid email address {value!r}: {exc}") from None
    return result.normalized


def ascii_email(address: str) -> str:
    """The address with its domain in ASCII (IDNA) form, for transports; an address whose
    local part is not ASCII has no ASCII form and is returned as it is (SMTPUTF8 needed)."""
    local, _, domain = address.rpartition("@")
    if domain.isascii():
        return address
    try:
        ascii_domain = validate_email(f"postmaster@{domain}", check_deliverability=False)\
            .ascii_domain
    except EmailNotValidError:
        return address
    return f"{local}@{ascii_domain}" if ascii_domain else address


MAX_NAME_LENGTH = 200
#: A run of control characters (C0, DEL, C1, line/paragraph separators) with the spaces around it.
_CONTROL_RUN = re.compile(r" *[\x00-\x1f\x7f-\x9f\u2028\u2029]+ *")


def clean_name(value: str | None) -> str:
    """A name with each run of control characters (CR, LF, tab ...) and spaces collapsed to one
    space, trimmed and capped at 200 characters. It changed more than outer spaces when it
    differs from `value.strip()` (an import warns then)."""
    raw = (value or "").strip()
    return " ".join(_CONTROL_RUN.sub(" ", raw).split())[:MAX_NAME_LENGTH].rstrip()


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
