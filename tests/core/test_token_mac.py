"""The tokens' MAC, computed from cached HMAC states, against the standard library's
`hmac.digest` as the reference: any secret (longer than SHA-256's block too), purpose and
payload."""

from __future__ import annotations

import hmac

from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.core import tokens
from tests.conftest import examples

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=100)


@settings(max_examples=examples(200), deadline=None)
@given(secret=st.one_of(texts, st.text(min_size=60, max_size=200).filter(
           lambda s: len(s.encode()) > 64 and "\ud800" > s[:1])),
       purpose=st.sampled_from(["unsubscribe", "preferences", "click", "verp", "csrf"]),
       payload=st.binary(max_size=300))
def test_the_mac_is_hmac_sha256(secret: str, purpose: str, payload: bytes) -> None:
    message = b"newsletter-token-2\0" + purpose.encode() + b"\0" + payload
    expected = hmac.digest(secret.encode("utf-8"), message, "sha256")[:20]
    assert tokens._mac(secret, purpose, payload) == expected
    assert tokens._mac(secret, purpose, payload) == expected  # from the cached states again


def test_tokens_verify_across_threads_of_signing() -> None:
    """Copies of the cached states never leak one message into the next."""
    from concurrent.futures import ThreadPoolExecutor

    secret = "s" * 40
    emails = [f"reader{n}@example.org" for n in range(2000)]
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda e: tokens.make_token(secret, "unsubscribe", e), emails))
    assert [tokens.read_token(secret, "unsubscribe", t) for t in made] == emails
