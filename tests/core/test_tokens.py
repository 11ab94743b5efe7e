"""Tokens that survive real life: any valid address, bound to a purpose, links of the first
token format still honoured, every token read through the one verifier (a rotation on a real
`serve`: tests/web/public/test_rotation.py; short secrets: tests/core/test_settings.py)."""

from __future__ import annotations

import base64
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.core.tokens import (
    BadToken,
    make_token,
    read_token,
    read_token_info,
)

OLD = "the-secret-before-rotation-0123456789"
NEW = "the-secret-after-the-rotation-abcdefgh"
SECRET = "tokens-test-secret-of-at-least-32-characters"

# local parts made of every character RFC 5322 allows unquoted, `|` and `.` included
local_parts = st.text(alphabet="abcXYZ019!#$%&'*+/=?^_`{|}~-.", min_size=1, max_size=30)


@settings(max_examples=300, deadline=None)
@given(local=local_parts, purpose=st.sampled_from(["unsubscribe", "confirm", "csrf"]))
def test_any_address_round_trips_and_only_for_its_purpose(local: str, purpose: str) -> None:
    email = f"{local}@example.org"
    token = make_token(SECRET, purpose, email)
    assert read_token(SECRET, purpose, token) == email.lower()
    other = "confirm" if purpose != "confirm" else "unsubscribe"
    with pytest.raises(BadToken):
        read_token(SECRET, other, token)


def _legacy(secret: str, purpose: str, email: str) -> str:
    """A token of the first format, as mail sent before this version carries it."""
    payload = f"{purpose}|{email.lower()}|0".encode()
    mac = hmac.digest(secret.encode(), payload, "sha256")[:20]

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"{b64(payload)}.{b64(mac)}"


def test_first_format_tokens_still_work_even_with_a_pipe() -> None:
    assert read_token(SECRET, "unsubscribe", _legacy(SECRET, "unsubscribe", "a|b@example.org")) \
        == "a|b@example.org"
    with pytest.raises(BadToken):
        read_token(SECRET, "confirm", _legacy(SECRET, "unsubscribe", "a|b@example.org"))


def test_expiry_and_stamp() -> None:
    token = make_token(SECRET, "confirm", "x@example.org", ttl=60, stamped=True, now=1000.5)
    info = read_token_info(SECRET, "confirm", token, now=1059)
    assert (info.subject, info.issued_ms, info.expires) == ("x@example.org", 1000500, 1060)
    with pytest.raises(BadToken, match="expired"):
        read_token(SECRET, "confirm", token, now=1061)
    assert make_token(SECRET, "unsubscribe", "x@example.org") == \
        make_token(SECRET, "unsubscribe", "X@example.org")  # reproducible messages


def test_every_token_is_read_through_the_one_verifier_and_csrf_has_one_home() -> None:
    """Only core/tokens.py reads tokens (its `Keys` always holds the rotation list), and only
    web/csrf.py makes or checks form tokens: no module can check with the current secret
    alone or invent a CSRF scheme of its own."""
    import ast
    from pathlib import Path

    import newsletter

    package = Path(newsletter.__file__).parent
    readers = {"read_token", "read_token_info", "read_link_token", "_parse", "_mac"}
    offenders = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                  for a in n.names}
        if rel != "core/tokens.py" and names & readers:
            offenders.append(f"{rel} reads tokens itself: {sorted(names & readers)}")
        # providers' webhooks check the provider's own signature or password, not our tokens
        theirs = ("providers/mailgun/webhook.py", "providers/postmark/webhook.py")
        if rel not in ("core/tokens.py", "audience/erasure.py", *theirs) and "hmac" in names:
            offenders.append(f"{rel} signs with hmac itself")
        if rel != "web/csrf.py" and {"CSRF_PURPOSE", "Sessions"} & names:
            offenders.append(f"{rel} has a CSRF scheme of its own")
    assert offenders == []
