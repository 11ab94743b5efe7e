"""SES fixtures: one stand-in per test process (moto's server, extended, behind the proxy of
tests.fake_ses), reset for each test, and the dispatch publication pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dispatch.conftest import Pub, pub  # noqa: F401  (the publication on each database)
from tests.fake_ses import FakeSes


@pytest.fixture(scope="session")
def ses_server() -> Iterator[FakeSes]:
    with FakeSes() as fake:
        yield fake


@pytest.fixture()
def ses(ses_server: FakeSes, monkeypatch: pytest.MonkeyPatch) -> FakeSes:
    """The stand-in, fresh: production access, 1000 messages/s, example.org verified."""
    ses_server.reset()
    for key, value in ses_server.env.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    return ses_server


@pytest.fixture()
def ses_pub(pub: Pub, ses: FakeSes) -> Pub:  # noqa: F811
    """The dispatch publication, sending through the SES stand-in."""
    pub.env.update(ses.env)
    return pub
