"""VERP addresses: signed, any case, every secret of the rotation list, nothing forged."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.compose.schema import BouncesConfig, PublicationConfig
from newsletter.core.tokens import BadToken, read_verp_token, verp_token
from newsletter.providers.bounces import verp
from newsletter.providers.mailing import Mailing
from tests.conftest import examples, sample_build

SECRETS = ["current-secret-with-at-least-32-characters", "previous-secret-of-32-characters-x"]
RETURN = "bounces@news.example.org"
ids = st.integers(min_value=0, max_value=2**63 - 1)


@settings(max_examples=examples(40), deadline=None)
@given(send=ids, row=ids, signer=st.sampled_from(SECRETS), upper=st.booleans())
def test_round_trip(send: int, row: int, signer: str, upper: bool) -> None:
    address = verp.address(RETURN, signer, send, row)
    local = address.partition("@")[0]
    assert len(local) <= 64 and address.endswith("@news.example.org")  # RFC 5321 limit
    assert set(local[len("bounces+"):]) <= set("0123456789abcdefghijklmnopqrstuvwxyz-")
    text = address.upper() if upper else address
    assert verp.parse(text, RETURN, SECRETS) == verp.Verp(send, row)
    assert verp.parse(f"<{text}>", RETURN, SECRETS) == verp.Verp(send, row)


@settings(max_examples=examples(40), deadline=None)
@given(send=ids, row=ids, other=ids, position=st.integers(min_value=0, max_value=40),
       char=st.sampled_from("0123456789abcdefghijklmnopqrstuvwxyz-"))
def test_any_change_is_refused(send: int, row: int, other: int, position: int,
                               char: str) -> None:
    token = verp_token(SECRETS[0], send, row)
    if other != row:  # another row with this token's signature
        payload, mac = token.rsplit("-", 1)
        assert verp.parse(f"bounces+{send:x}-{other:x}-{mac}@news.example.org", RETURN,
                          SECRETS) is None
    position %= len(token)
    altered = token[:position] + char + token[position + 1:]
    if altered != token:
        with pytest.raises(BadToken):
            read_verp_token(SECRETS, altered)


def test_unknown_secret_other_domain_and_plain_address_are_refused() -> None:
    address = verp.address(RETURN, "a-secret-nobody-here-knows-0123456789", 7, 101)
    assert verp.parse(address, RETURN, SECRETS) is None
    address = verp.address(RETURN, SECRETS[1], 7, 101)
    assert verp.parse(address, RETURN, SECRETS) == verp.Verp(7, 101)  # an earlier secret
    assert verp.parse(address.replace("news.example.org", "example.net"), RETURN,
                      SECRETS) is None
    assert verp.parse("bounces@news.example.org", RETURN, SECRETS) is None
    assert verp.parse("other+7-65-aaaa@news.example.org", RETURN, SECRETS) is None


def test_envelope_sender_is_the_seam_for_the_smtp_transport() -> None:
    config: PublicationConfig = sample_build()[0].config
    mailing = Mailing(config=config, slug="2026-11-24", subject="s", html="h", text="t",
                      content_hash="0" * 64, send_ref="7", secret=SECRETS[0])
    assert verp.envelope_sender(mailing, 101) == config.sender.email  # no bounces: section
    bounces = BouncesConfig(imap_url="imaps://bounces@imap.example.org/INBOX",
                            return_path=RETURN)
    mailing = dataclasses.replace(mailing, config=config.model_copy(update={"bounces": bounces}))
    sender = verp.envelope_sender(mailing, 101)
    assert verp.parse(sender, RETURN, SECRETS) == verp.Verp(7, 101)
    test_send = dataclasses.replace(mailing, send_ref="test-1a2b")
    assert verp.envelope_sender(test_send, 0) == config.sender.email  # outside the ledger
