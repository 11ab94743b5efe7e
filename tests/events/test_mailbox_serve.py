"""`newsletter serve` reads the bounce mailbox by itself, every `bounces.every`."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import pytest

from newsletter.compose.publication import Publication
from newsletter.web.public import create_app
from tests.events.conftest import MailPub, write_config
from tests.mail_fixtures import sample
from tests.providers.bounce_expectations import ROWS

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette: "install httpx2"
    from starlette.testclient import TestClient


def wait_for(what: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, "the bounce mailbox was not read in time"
        time.sleep(0.05)


def test_serve_reads_the_mailbox_now_and_every_few_seconds(mail_pub: MailPub) -> None:
    config = mail_pub.root / "newsletter.yaml"
    config.write_text(config.read_text().split("bounces:")[0])
    write_config(mail_pub.root, mail_pub.mailbox, "  every: 1s\n")
    mail_pub.mailbox.append(sample("01"))
    app = create_app(Publication.load(mail_pub.root), engine=mail_pub.engine, prune=False)
    with TestClient(app) as client:
        wait_for(lambda: mail_pub.statuses()[ROWS[101]] == "bounced")
        assert client.get("/healthz").status_code in (200, 503)  # it serves meanwhile
        mail_pub.mailbox.append(sample("14"))  # read at the next turn, not at start-up
        wait_for(lambda: mail_pub.statuses()[ROWS[113]] == "complained")
    assert len(mail_pub.mailbox.messages("Processed")) == 2


def test_serve_without_the_password_leaves_the_mailbox_alone(
        mail_pub: MailPub, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.delenv("NEWSLETTER_BOUNCES_PASSWORD")
    mail_pub.mailbox.append(sample("01"))
    app = create_app(Publication.load(mail_pub.root), engine=mail_pub.engine, prune=False)
    with TestClient(app) as client:
        client.get("/healthz")
    assert "NEWSLETTER_BOUNCES_PASSWORD is not" in caplog.text
    assert len(mail_pub.mailbox.messages("INBOX")) == 1
    assert mail_pub.statuses()[ROWS[101]] == "active"
