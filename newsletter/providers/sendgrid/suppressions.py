"""SendGrid's suppression lists, read through the official client (paged with limit/offset,
from `start_time` on), and the unsubscribe group's suppressions.

Applying them to subscribers is newsletter.events.suppressions' job.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
from collections.abc import Iterator
from typing import Any

from newsletter.core.errors import FailedError, InputError, Problem
from newsletter.providers.sendgrid.transport import provider_message

PAGE = 500  # SendGrid's largest page for the suppression lists
TIMEOUT_S = 60.0


class SendGridLists:
    """The suppression endpoints, through the official client."""

    def __init__(self, api_key: str | None, api_url: str):
        if not api_key:
            raise InputError(Problem("SENDGRID_API_KEY", None, "SENDGRID_API_KEY is not set; "
                                     "suppressions sync needs a key with Suppressions read "
                                     "access"))
        from sendgrid import SendGridAPIClient

        self.client = SendGridAPIClient(api_key=api_key, host=api_url).client
        self.api_url = api_url

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

    def pages(self, path: str, start_time: int) -> Iterator[list[dict]]:
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
