"""Provider fixtures: the dispatch publication (tests/dispatch/conftest.py) with its fake
SendGrid and SMTP server, and a `rig`, one HTTP-API provider's fake server with the
publication pointed at it, for tests that run the same scenario through Postmark and through
Mailgun; the test Dovecot for the bounce mailbox."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.dispatch import conftest as dispatch_fixtures
from tests.dispatch.conftest import Pub
from tests.fake_http import FakeApi
from tests.fake_mailgun import API_KEY, DOMAIN, FakeMailgun
from tests.fake_postmark import TOKEN, FakePostmark
from tests.mail_fixtures import bounce_mailbox, dovecot, dovecot_inbox_namespace  # noqa: F401
from tests.web.public import conftest as public_fixtures

pub = dispatch_fixtures.pub  # the publication fixture
# the fake SendGrid and the SMTP server it sends to (with its TLS files)
sendgrid, smtp_server = dispatch_fixtures.sendgrid, dispatch_fixtures.smtp_server
tls_files = dispatch_fixtures.tls_files
site, signing_key = public_fixtures.site, public_fixtures.signing_key  # the public side's


@dataclass
class Rig:
    """One provider's fake and the names of its settings."""

    name: str
    fake: FakeApi
    batch_env: str  # recipients per request
    in_flight_env: str  # requests at once

    def send(self, pub: Pub, *args: str):
        return pub.cli("send", *args, "--transport", self.name, "--yes")


def point(pub: Pub, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        pub.env[key] = value
        monkeypatch.setenv(key, value)


@pytest.fixture()
def postmark(pub: Pub, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePostmark]:
    """The fake Postmark, with the publication pointed at it."""
    with FakePostmark() as fake:
        point(pub, monkeypatch, {"POSTMARK_SERVER_TOKEN": TOKEN, "POSTMARK_API_URL": fake.url})
        yield fake


@pytest.fixture()
def mailgun(pub: Pub, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMailgun]:
    """The fake Mailgun, with the publication pointed at it."""
    with FakeMailgun() as fake:
        point(pub, monkeypatch, {"MAILGUN_API_KEY": API_KEY, "MAILGUN_DOMAIN": DOMAIN,
                                 "MAILGUN_API_URL": fake.url})
        yield fake


@pytest.fixture(params=["postmark", "mailgun"])
def rig(request: pytest.FixtureRequest) -> Rig:
    """Each HTTP-API provider in turn."""
    name = request.param
    return Rig(name, request.getfixturevalue(name), f"NEWSLETTER_{name.upper()}_BATCH",
               f"NEWSLETTER_{name.upper()}_IN_FLIGHT")
