"""Postmark's suppressions of one message stream, read from its dump:
`GET /message-streams/{stream}/suppressions/dump` (optionally `fromdate`, a day), answering
`{"Suppressions": [{"EmailAddress", "SuppressionReason", "Origin", "CreatedAt"}]}`.

Reasons: HardBounce (the address bounced hard), SpamComplaint, ManualSuppression (the recipient
unsubscribed through Postmark's link, or someone suppressed the address by hand).

`release` is the other direction: after a confirmed sign-up it reactivates the address in the
stream, `POST /message-streams/{stream}/suppressions/delete` with `{"Suppressions":
[{"EmailAddress": ...}]}`, when the dump (filtered by `EmailAddress`) lists it. Postmark
reactivates HardBounce and ManualSuppression entries only: it answers `Failed` for a
SpamComplaint, and that person stays suppressed there (logged; reactivate them in Postmark's
own interface only if they ask).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from urllib.parse import quote

from newsletter.core.errors import FailedError
from newsletter.providers.events import DropReason
from newsletter.providers.neutral import Page, Since, Suppression
from newsletter.providers.postmark.api import api, error_text

log = logging.getLogger("newsletter.events")

REASONS = {"HardBounce": DropReason.BOUNCED, "SpamComplaint": DropReason.COMPLAINED,
           "ManualSuppression": DropReason.UNSUBSCRIBED}


def unix(text: object) -> int | None:
    """Unix seconds from one of Postmark's ISO 8601 times (7 decimals, an offset or none)."""
    if not isinstance(text, str) or not text:
        return None
    head, _, fraction = text.partition(".")
    zone = ""
    for mark in ("Z", "+", "-"):
        at = fraction.find(mark) if fraction else -1
        if at >= 0:
            zone = fraction[at:]
            break
    try:
        when = dt.datetime.fromisoformat(head + (zone.replace("Z", "+00:00") if zone else ""))
    except ValueError:
        return None
    return int((when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp())


class PostmarkSuppressions:
    """The suppression dump of the publication's message stream."""

    provider = "postmark"

    def __init__(self, token: str | None, api_url: str, stream: str):
        self.api = api(token, api_url)
        self.stream = stream

    def pages(self, since: Since) -> Iterator[Page]:
        query = {}
        mark = f"postmark:{self.stream}"
        if since(mark):
            query["fromdate"] = dt.datetime.fromtimestamp(since(mark), dt.UTC).strftime(
                "%Y-%m-%d")
        reply = self.api.call(f"reading the suppressions of {self.stream!r}", "GET",
                              f"/message-streams/{self.stream}/suppressions/dump",
                              key_hint="POSTMARK_SERVER_TOKEN", message=error_text,
                              params=query)
        found = reply.json()
        rows = found.get("Suppressions") if isinstance(found, dict) else None
        if reply.status != 200 or not isinstance(rows, list):
            raise FailedError(f"unexpected answer from Postmark's suppression dump of "
                              f"{self.stream!r}: {error_text(reply.body) or reply.status}")
        entries = [Suppression(row["EmailAddress"].strip(), REASONS[row["SuppressionReason"]],
                               unix(row.get("CreatedAt")))
                   for row in rows if isinstance(row, dict)
                   and isinstance(row.get("EmailAddress"), str)
                   and row.get("SuppressionReason") in REASONS]
        yield Page(f"stream {self.stream}", mark, entries)

    def release(self, email: str) -> list[str]:
        """Reactivate `email` in the stream; `["stream <id>"]` when Postmark took it off, []
        when it was not suppressed there or Postmark keeps it (a SpamComplaint: logged)."""
        path = f"/message-streams/{quote(self.stream, safe='')}/suppressions"
        found = self.api.call(f"looking an address up in the suppressions of {self.stream!r}",
                              "GET", path + "/dump", key_hint="POSTMARK_SERVER_TOKEN",
                              message=error_text, expected=(), params={"EmailAddress": email})
        listed = found.json()
        rows = listed.get("Suppressions") if isinstance(listed, dict) else None
        if not isinstance(rows, list):
            raise FailedError(f"unexpected answer from Postmark's suppression dump of "
                              f"{self.stream!r}: {error_text(found.body) or found.status}")
        reasons = {row.get("SuppressionReason") for row in rows if isinstance(row, dict)
                   and str(row.get("EmailAddress", "")).strip().lower() == email.lower()}
        if not reasons:
            return []
        reply = self.api.call(f"reactivating an address in {self.stream!r}", "POST",
                              path + "/delete", key_hint="POSTMARK_SERVER_TOKEN",
                              message=error_text, expected=(),
                              json={"Suppressions": [{"EmailAddress": email}]})
        answer = reply.json()
        results = answer.get("Suppressions") if isinstance(answer, dict) else None
        if not isinstance(results, list) or not results or not isinstance(results[0], dict):
            raise FailedError(f"unexpected answer from Postmark's suppression delete in "
                              f"{self.stream!r}: {error_text(reply.body) or reply.status}")
        if results[0].get("Status") == "Deleted":
            return [f"stream {self.stream}"]
        log.warning("Postmark keeps a confirmed address suppressed in the stream %r (%s): %s",
                    self.stream, ", ".join(sorted(map(str, reasons))),
                    results[0].get("Message") or "it answered Failed")
        return []

    def close(self) -> None:
        self.api.close()
