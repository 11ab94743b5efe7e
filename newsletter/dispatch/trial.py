"""Test sends: a [TEST] copy of a built issue to the test recipients, outside the ledger."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from newsletter.core.errors import FailedError, NewsletterError
from newsletter.core.personalise import SAMPLE_RECIPIENT, Recipient
from newsletter.core.tokens import SAMPLE_SECRET
from newsletter.dispatch.artifact import Artifact
from newsletter.dispatch.retry import RetryPolicy, Tried, retrying
from newsletter.providers import make_transport
from newsletter.providers.mailing import Item

if TYPE_CHECKING:
    from newsletter.compose import Build
    from newsletter.compose.publication import Publication


@dataclass
class TestResult:
    """A test send's outcome; `summary()` is one line for people."""

    __test__ = False  # not a pytest class

    transport: str
    recipients: list[str]
    accepted: list[str]
    failed: dict[str, str]
    where: str

    def summary(self) -> str:
        line = (f"Sent a test to {', '.join(self.accepted)} via {self.transport} "
                f"({self.where})." if self.accepted else "No test message was sent.")
        if self.failed:
            line += " Not sent: " + "; ".join(f"{k}: {v}" for k, v in self.failed.items())
        return line


def send_test(pub: Publication, build: Build, to: list[str] | None = None,
              transport: str | None = None, *, policy: RetryPolicy | None = None,
              recipient: Recipient | None = None) -> TestResult:
    """Send `build` with a [TEST] subject to `to` (or `test_recipients`), outside the ledger.

    Each copy is personalised with the name and attributes of `recipient` (default: the
    sample recipient) and the test address; copies the provider did not take are handed over
    again as a send's batches are (dispatch.retry). Raises FailedError when any copy was not
    accepted.
    """
    from newsletter.checks import require_passing
    from newsletter.compose.fields import check_address

    require_passing(pub, build)
    addresses = list(dict.fromkeys(to or pub.config.test_recipients))
    if not addresses:
        raise NewsletterError("no test recipients: add test_recipients to newsletter.yaml or pass "
                              "--to ADDRESS")
    try:
        addresses = [check_address(a) for a in addresses]
    except ValueError as exc:
        raise NewsletterError(str(exc)) from None
    sender = make_transport(transport, pub.settings, pub.config)
    sender.preflight()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    mailing = Artifact.freeze(pub, build, (build.slug,)).mailing(
        pub.config, f"test-{stamp}", subject=f"[TEST] {build.subject}",
        secret=pub.settings.secret or SAMPLE_SECRET)
    sender.open(mailing)
    person = recipient or SAMPLE_RECIPIENT
    items = [Item(n, Recipient(a, person.name, person.attributes))
             for n, a in enumerate(addresses, start=1)]
    accepted: list[str] = []
    failed: dict[str, str] = {}

    def attempt(batch: list[Item], number: int, last: bool) -> Tried[Item]:
        result = sender.send(batch)
        again = []
        for item, outcome in zip(batch, result.outcomes, strict=True):
            address = item.recipient.email
            if outcome.state == "accepted":
                accepted.append(address)
                failed.pop(address, None)
                continue
            failed[address] = outcome.error or outcome.state
            if outcome.state in ("retry", "deferred") and not result.stop and not last:
                again.append(item)
        return Tried(result, again)

    try:  # the send engine's retries: the same policy, waits and provider stops
        retrying(items, attempt, policy or RetryPolicy.from_env(), threading.Event())
    finally:
        sender.close()
    outcome = TestResult(sender.name, addresses, accepted, failed, sender.where)
    if failed:
        raise FailedError(outcome.summary())
    return outcome
