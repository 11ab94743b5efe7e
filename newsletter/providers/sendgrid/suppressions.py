"""SendGrid's suppression lists, read through the official client, in neutral words
(newsletter.providers.neutral), and an address taken off them again.

Lists: bounces, spam reports, global unsubscribes and invalid emails (paged with limit/offset,
and from `start_time` on: each list keeps its own mark, under the list's name), plus the
unsubscribe group's suppressions when `sendgrid.asm_group_id` is set (one list of addresses,
always read whole). `release` is the other direction: after a confirmed sign-up it deletes the
address from the bounce, spam report and global unsubscribe lists and from the unsubscribe
group, so that SendGrid delivers to someone who asked again.

Applying them to subscribers is newsletter.events.suppressions' job.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from newsletter.core.errors import FailedError, InputError, Problem
from newsletter.providers.events import DropReason
from newsletter.providers.neutral import Page, Since, Suppression
from newsletter.providers.sendgrid.answers import provider_message

PAGE = 500  # SendGrid's largest page for the suppression lists
TIMEOUT_S = 60.0

#: list (and its mark) -> (API path under /v3, why its addresses are suppressed)
LISTS: dict[str, tuple[str, DropReason]] = {
    "bounces": ("suppression/bounces", DropReason.BOUNCED),
    "spam_reports": ("suppression/spam_reports", DropReason.COMPLAINED),
    "unsubscribes": ("suppression/unsubscribes", DropReason.UNSUBSCRIBED),
    "invalid_emails": ("suppression/invalid_emails", DropReason.INVALID),
}
#: Where a confirmed sign-up is deleted from: (label, API path with {email}).
RELEASE_PATHS = (
    ("bounces", "suppression/bounces/{email}"),
    ("spam_reports", "suppression/spam_reports/{email}"),
    ("global_unsubscribes", "asm/suppressions/global/{email}"),
)


def _created(entry: dict) -> int | None:
    value = entry.get("created")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class SendGridLists:
    """The suppression endpoints, through the official client: a SuppressionSource."""

    provider = "sendgrid"

    def __init__(self, api_key: str | None, api_url: str, group_id: int | None = None):
        if not api_key:
            raise InputError(Problem("SENDGRID_API_KEY", None, "SENDGRID_API_KEY is not set; "
                                     "suppressions sync needs a key with Suppressions read "
                                     "access"))
        from sendgrid import SendGridAPIClient

        self.client = SendGridAPIClient(api_key=api_key, host=api_url).client
        self.api_url = api_url
        self.group_id = group_id

    def _get(self, path: str, query: dict[str, int] | None = None) -> Any:
        from python_http_client.exceptions import HTTPError

        try:
            response = self.client._(path).get(query_params=query, timeout=TIMEOUT_S)
        except HTTPError as exc:
            message = provider_message(exc.body) or exc.reason
            raise FailedError(f"SendGrid answered {exc.status_code} to GET /v3/{path}: "
                              f"{message}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise FailedError(f"cannot reach SendGrid at {self.api_url}: {reason}") from None
        try:
            return json.loads(response.body or b"[]")
        except ValueError:
            raise FailedError(f"SendGrid sent something other than JSON for /v3/{path}") from None

    def delete(self, path: str) -> bool:
        """DELETE /v3/<path>; True when SendGrid removed something, False when it was not
        there (404); FailedError otherwise."""
        from python_http_client.exceptions import HTTPError

        try:
            self.client._(path).delete(timeout=TIMEOUT_S)
        except HTTPError as exc:
            if exc.status_code == 404:
                return False
            message = provider_message(exc.body) or exc.reason
            raise FailedError(f"SendGrid answered {exc.status_code} to DELETE /v3/{path}: "
                              f"{message}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise FailedError(f"cannot reach SendGrid at {self.api_url}: {reason}") from None
        return True

    def pages(self, since: Since) -> Iterator[Page]:
        """Each list from its mark on (at least one page each, perhaps empty), then the
        unsubscribe group's whole list."""
        for name, (path, reason) in LISTS.items():
            empty = True
            for entries in self.paged(path, since(name)):
                empty = False
                yield Page(name, name, [Suppression(e["email"].strip(), reason, _created(e))
                                        for e in entries])
            if empty:
                yield Page(name, name, [])
        if self.group_id is not None:
            yield Page(f"group_{self.group_id}", None,
                       [Suppression(e.strip(), DropReason.UNSUBSCRIBED)
                        for e in self.group(self.group_id)])

    def release(self, email: str) -> list[str]:
        """Delete `email` from the lists a confirmed sign-up overrides; the lists it was on."""
        segment = quote(email, safe="@")
        paths = [(label, path.format(email=segment)) for label, path in RELEASE_PATHS]
        if self.group_id is not None:
            paths.append((f"group_{self.group_id}",
                          f"asm/groups/{int(self.group_id)}/suppressions/{segment}"))
        return [label for label, path in paths if self.delete(path)]

    def close(self) -> None:
        """Nothing to release: the official client opens a connection per request."""

    def paged(self, path: str, start_time: int) -> Iterator[list[dict]]:
        """Every entry of a paged list, one page at a time."""
        offset = 0
        while True:
            query = {"limit": PAGE, "offset": offset}
            if start_time:
                query["start_time"] = start_time
            page = self._get(path, query)
            if not isinstance(page, list):
                raise FailedError(f"unexpected answer from /v3/{path}: not a list")
            entries = [e for e in page if isinstance(e, dict) and isinstance(e.get("email"), str)]
            if entries:
                yield entries
            if len(page) < PAGE:
                return
            offset += PAGE

    def group(self, group_id: int) -> list[str]:
        found = self._get(f"asm/groups/{int(group_id)}/suppressions")
        if not isinstance(found, list):
            raise FailedError("unexpected answer from the unsubscribe group: not a list")
        return [e for e in found if isinstance(e, str)]
