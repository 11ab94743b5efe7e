"""Dispatch: personalise the once-rendered issue and hand it to a transport behind a ledger.

Public API (imported lazily, so `import newsletter.dispatch` stays cheap):

- `send_issue(pub, issue, segment, ...)`: a ledgered send (see service.py);
- `send_test(pub, build, to=None, transport=None, recipient=None)`: a test send outside
  the ledger, personalised as `recipient`;
- `sends_for(pub, issue)`: the ledger's sends of an issue, for `newsletter status`;
- `last_completed_send(pub)`: the latest completed send of any issue (for `new --from-feed`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from newsletter.compose import Build
    from newsletter.compose.publication import Publication
    from newsletter.core.personalise import Recipient
    from newsletter.dispatch.service import TestResult

__all__ = ["last_completed_send", "send_issue", "send_test", "sends_for"]


def send_test(pub: Publication, build: Build, to: list[str] | None = None,
              transport: str | None = None, recipient: Recipient | None = None) -> TestResult:
    """Send `build` to `to` (or `test_recipients`) with a [TEST] subject, outside the ledger,
    personalised as `recipient` (default: the sample recipient)."""
    from newsletter.dispatch.service import send_test as run

    return run(pub, build, to=to, transport=transport, recipient=recipient)


def __getattr__(name: str) -> Any:
    if name in ("send_issue", "sends_for", "last_completed_send"):
        from newsletter.dispatch import service

        return getattr(service, name)
    raise AttributeError(name)
