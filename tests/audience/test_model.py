"""Address and tag normalisation."""

from __future__ import annotations

import random

import pytest
from email_validator import EmailNotValidError, validate_email

from newsletter.audience.model import email_key, normalize_email, normalize_tag, split_tags


def reference(address: str) -> str | None:
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        return None


def ours(address: str) -> str | None:
    try:
        return normalize_email(address)
    except ValueError:
        return None


TRICKY = [
    "Ann.Lee@Example.ORG", " bob@example.org ", "a..b@example.org", ".a@example.org",
    "a.@example.org", "a@example", "a@-example.org", "a@example-.org", "a@exa_mple.org",
    "a@localhost", "a@example.test", "a@example.invalid", "a@123.45.67.89", "x" * 64 + "@e.org",
    "x" * 65 + "@e.org", "a@" + "b" * 64 + ".org", "a@" + ("b" * 60 + ".") * 4 + "org",
    "a+tag@example.org", "o'neil@example.org", "user@EXAMPLE.org.", "\"quoted\"@example.org",
    "jérôme@example.org", "a@bücher.example", "a@xn--bcher-kva.example", "a@@example.org",
    "a b@example.org", "@example.org", "a@", "", "a@example.c", "a@example.123",
]


@pytest.mark.parametrize("address", TRICKY)
def test_normalize_email_agrees_with_email_validator(address: str) -> None:
    assert ours(address) == reference(address)


def test_normalize_email_agrees_with_email_validator_on_random_addresses() -> None:
    rng = random.Random(3)
    alphabet = "abcXYZ019.!#$%&'*+/=?^_`{|}~-"
    domains = ["example.org", "Example.ORG", "ex-ample.co.uk", "x.y", "-bad.org", "a..b.org",
               "localhost", "sub.example.onion", "e.org", "1.2.3.4", "example.arpa"]
    for _ in range(3000):
        local = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        address = f"{local}@{rng.choice(domains)}"
        assert ours(address) == reference(address), address


def test_invalid_addresses_say_why() -> None:
    with pytest.raises(ValueError, match="invalid email address 'nope'"):
        normalize_email("nope")
    with pytest.raises(ValueError, match="no email address"):
        normalize_email("  ")


def test_email_key_ignores_case_and_tags_are_lower_cased() -> None:
    assert email_key(normalize_email("Ann@EXAMPLE.org")) == email_key("ann@example.org")
    assert normalize_tag("  Cyber ") == "cyber"
    assert split_tags("Energy; trade;;  ") == {"energy", "trade"}
    with pytest.raises(ValueError, match="longer than 100"):
        normalize_tag("x" * 101)
