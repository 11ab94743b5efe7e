"""The headers receiving providers read, exactly, on every transport: List-Id (RFC 2919) and
Gmail's Feedback-ID (`a:b:c:SenderId`)."""

from __future__ import annotations

import email
from pathlib import Path

import pytest

from newsletter.compose.package import list_id
from newsletter.compose.schema import PublicationConfig
from newsletter.core.personalise import Recipient
from newsletter.providers.mailing import Item, Mailing
from newsletter.providers.mime import feedback_id, sender_id
from tests.conftest import sample_build

LIST_ID = "Policy Experts Weekly <policy-experts-weekly.example.org>"


@pytest.fixture(scope="module")
def mailing() -> Mailing:
    pub, build = sample_build()
    return Mailing(pub.config, build.slug, build.subject, build.html, build.text,
                   build.content_hash, "42", "secret-of-at-least-32-characters-0000")


def test_outbox_and_smtp_messages_carry_both(mailing: Mailing, tmp_path: Path) -> None:
    from newsletter.providers.outbox import OutboxTransport

    transport = OutboxTransport(tmp_path)
    transport.open(mailing)
    result = transport.send([Item(7, Recipient("reader@example.org", "Reader"))])
    assert [o.state for o in result.outcomes] == ["accepted"]
    (path,) = [p for p in tmp_path.rglob("*") if p.is_file()]
    message = email.message_from_bytes(path.read_bytes())
    assert message.get_all("List-Id") == [LIST_ID]
    assert message.get_all("Feedback-ID") == ["2026-11-24:42:policy-experts-weekly:example-org"]


def test_sendgrid_requests_carry_both(mailing: Mailing) -> None:
    from newsletter.providers.sendgrid.payload import PayloadBuilder

    body, rejected = PayloadBuilder(mailing).body([Item(7, Recipient("reader@example.org"))])
    assert rejected == {}
    assert body["headers"] == {"List-Id": LIST_ID,
                               "Feedback-ID": "2026-11-24:42:policy-experts-weekly:example-org"}


def test_postmark_messages_carry_both(mailing: Mailing) -> None:
    import orjson

    from newsletter.providers.postmark.payload import PostmarkPayload

    body, rejected = PostmarkPayload(mailing, "broadcast").body(
        [Item(7, Recipient("reader@example.org"))])
    assert rejected == {}
    [message] = orjson.loads(body)
    headers = {h["Name"]: h["Value"] for h in message["Headers"]}
    assert headers["List-Id"] == LIST_ID
    assert headers["Feedback-ID"] == "2026-11-24:42:policy-experts-weekly:example-org"


def test_mailgun_requests_carry_both(mailing: Mailing) -> None:
    from urllib.parse import parse_qsl

    from newsletter.providers.mailgun.payload import MailgunPayload

    body, rejected = MailgunPayload(mailing).body([Item(7, Recipient("reader@example.org"))])
    assert rejected == {}
    fields = dict(parse_qsl(body.decode()))
    assert fields["h:List-Id"] == LIST_ID
    assert fields["h:Feedback-ID"] == "2026-11-24:42:policy-experts-weekly:example-org"


def _config(name: str, sender: str) -> PublicationConfig:
    base = sample_build()[0].config
    return base.model_copy(update={"name": name,
                                   "sender": base.sender.model_copy(update={"email": sender})})


@pytest.mark.parametrize("name,sender,expected_list_id,expected_sender_id", [
    ("Policy Experts Weekly", "newsletter@example.org",
     "Policy Experts Weekly <policy-experts-weekly.example.org>", "example-org"),
    ("نشرة الخبراء", "akhbar@example.org", "نشرة الخبراء <akhbar.example.org>", "example-org"),
    ("Le Bulletin d'Été", "n@a.io", "Le Bulletin d'Été <le-bulletin-d-ete.a.io>", "a-io-mail"),
    ("Weekly", "n@news.policy-institute.example.org",
     "Weekly <weekly.news.policy-institute.example.org>", "news-policy-ins"),
])
def test_list_id_and_sender_id(name: str, sender: str, expected_list_id: str,
                               expected_sender_id: str) -> None:
    config = _config(name, sender)
    assert list_id(config) == expected_list_id
    label = expected_list_id.rsplit("<", 1)[1].split(".", 1)[0]
    assert label.isascii() and label.replace("-", "").isalnum()  # RFC 2919: a dot-atom
    assert sender_id(config) == expected_sender_id and 5 <= len(expected_sender_id) <= 15


def test_feedback_id_has_four_fields_whatever_the_slug() -> None:
    config = _config("Policy Experts Weekly", "newsletter@example.org")
    value = feedback_id(config, "odd:slug with space", "test-1a2b")
    assert value == "oddslugwithspace:test-1a2b:policy-experts-weekly:example-org"
    assert value.count(":") == 3
