"""`newsletter send-test` and `dispatch.send_test()` (the preview's Send test button)."""

from __future__ import annotations

import email
from email import policy

import pytest
from sqlalchemy import func, select

from newsletter import dispatch
from newsletter.compose import build_issue
from newsletter.compose.publication import Publication
from newsletter.core.errors import FailedError
from newsletter.db.ledger_tables import sends
from tests.dispatch.conftest import SLUG, Pub
from tests.fake_sendgrid import FakeSendGrid


def _no_sends(pub: Pub) -> bool:
    with pub.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(sends)).scalar_one() == 0


def test_send_test_goes_to_test_recipients_with_a_test_subject(pub: Pub) -> None:
    result = pub.cli("send-test", SLUG)
    assert result.exit_code == 0, result.output
    assert "Sent a test to editor@example.org via outbox" in result.output
    [path] = list((pub.outbox / SLUG).glob("test-*/*.eml"))
    msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert msg["Subject"].startswith("[TEST] ")
    assert msg["To"].addresses[0].addr_spec == "editor@example.org"
    text = msg.get_body(("plain",)).get_content()
    assert "Hello Sample," in text  # personalised with the sample recipient
    assert "You receive this email as editor@example.org" in text
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert _no_sends(pub)


def test_send_test_to_any_address_through_sendgrid(pub: Pub, sendgrid: FakeSendGrid) -> None:
    result = pub.cli("send-test", SLUG, "--to", "a@example.net", "--to", "B@Example.net",
                     "--transport", "sendgrid")
    assert result.exit_code == 0, result.output
    assert sorted(d.email for d in sendgrid.deliveries) == ["B@example.net", "a@example.net"]
    delivery = sendgrid.deliveries[0]
    assert delivery.subject.startswith("[TEST] ")
    assert delivery.custom_args["nl_send"].startswith("test-")
    assert _no_sends(pub)


def test_send_test_refusals(pub: Pub, sendgrid: FakeSendGrid) -> None:
    bad = pub.cli("send-test", SLUG, "--to", "not-an-address")
    assert bad.exit_code == 2 and "not a valid email address" in bad.output
    sendgrid.answer(400, {"errors": [{"field": "content", "message": "bad content"}]})
    failed = pub.cli("send-test", SLUG, "--transport", "sendgrid")
    assert failed.exit_code == 1
    assert "Not sent: editor@example.org: SendGrid rejected the request (400)" in failed.output
    config = pub.root / "newsletter.yaml"
    config.write_text(config.read_text().replace("test_recipients: [editor@example.org]\n", ""))
    none = pub.cli("send-test", SLUG)
    assert none.exit_code == 2 and "no test recipients" in none.output


def test_python_api_for_the_preview(pub: Pub, monkeypatch: pytest.MonkeyPatch) -> None:
    publication = Publication.load(pub.root)
    build = build_issue(publication, SLUG)
    result = dispatch.send_test(publication, build, to=["me@example.org"], transport="outbox")
    assert result.recipients == ["me@example.org"] and result.accepted == ["me@example.org"]
    assert "Sent a test to me@example.org via outbox" in result.summary()
    assert list((pub.outbox / SLUG).glob("test-*/*-me_example.org.eml"))
    monkeypatch.setenv("SMTP_URL", "smtp://127.0.0.1:9")
    publication = Publication.load(pub.root)
    with pytest.raises(FailedError, match="cannot reach SMTP server smtp://127.0.0.1:9"):
        dispatch.send_test(publication, build, transport="smtp")
