"""Property tests: whatever a subscriber's name holds, the To header is one well-formed header
naming exactly that recipient, and the address goes out with its domain as A-labels."""

from __future__ import annotations

import email
from email import policy

import idna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.core.personalise import Recipient
from newsletter.providers.mailing import Unsendable, wire_address
from newsletter.providers.mime import MAX_DISPLAY_NAME, display_name, format_to

NAMES = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=400) | st.text(
    st.sampled_from(list('\r\n\t,;:"<>@\\() abc\u00e9\u0645')), max_size=3000)
LOCALS = st.sampled_from(["reader", "pipe|plus+tag", "o'brien", "j\u00f6rg"])
DOMAINS = st.sampled_from(["example.org", "b\u00fccher.example", "\u4f8b\u3048.example"])


def _reference_name(name: str) -> str:
    """Plain restatement of the display-name rule: control characters count as blanks."""
    words = "".join(" " if ord(c) < 32 or 127 <= ord(c) < 160 else c for c in name).split()
    return " ".join(words)[:MAX_DISPLAY_NAME].rstrip()


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(NAMES, LOCALS, DOMAINS)
def test_the_to_header_names_exactly_one_recipient(name: str, local: str, domain: str) -> None:
    address = wire_address(f"{local}@{domain}")
    header = format_to(Recipient(address, name))
    assert header.endswith(b"\r\n") and max(map(len, header.split(b"\r\n"))) <= 998
    assert b"\r" not in header[:-2].replace(b"\r\n ", b"") and b"\n" not in header[:-2].replace(
        b"\r\n ", b"")
    msg = email.message_from_string(header.decode("utf-8") + "\r\n", policy=policy.SMTPUTF8)
    (parsed,) = msg["To"].addresses
    assert parsed.addr_spec == address
    assert display_name(name) == _reference_name(name)
    assert parsed.display_name == _reference_name(name)


@given(LOCALS, DOMAINS)
def test_domains_go_out_as_a_labels(local: str, domain: str) -> None:
    out = wire_address(f"{local}@{domain}")
    assert out.split("@")[1].isascii()
    assert idna.decode(out.split("@")[1]) == idna.decode(idna.encode(domain, uts46=True))
    assert out.split("@")[0] == local


@given(st.sampled_from(["a\r\nb@example.org", "x@ex\nample.org", "no-at-sign"]))
def test_addresses_that_cannot_be_encoded_are_refused_in_words(address: str) -> None:
    try:
        wire_address(address)
    except Unsendable as exc:
        assert "cannot" in str(exc)
    else:
        raise AssertionError(f"{address!r} was accepted")
