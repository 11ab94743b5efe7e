"""SES's account-level suppression list, in neutral records (newsletter.providers.neutral).

`ListSuppressedDestinations` pages through the list (up to 1,000 entries a page, NextToken),
from `StartDate` on when a sync has a mark: each entry is an address, the reason SES put it
there (BOUNCE or COMPLAINT) and when (`LastUpdateTime`). `release` is the other direction:
`DeleteSuppressedDestination` after the person's own confirmed sign-up, so SES delivers to
someone who asked again. Applying the list to subscribers is newsletter.events.suppressions'
job.

The calls go through the same boto3 client setup as sending (newsletter.providers.ses.client:
the standard AWS environment, `ses.region`), with botocore's own retries, since reading and
deleting may safely be repeated.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from newsletter.compose.provider_config import SesConfig
from newsletter.core.errors import FailedError
from newsletter.providers.events import DropReason
from newsletter.providers.neutral import Page, Since, Suppression
from newsletter.providers.ses.client import error_parts, make_client

PAGE = 1000  # SES's largest PageSize
LIST = "ses_suppressions"  # the account-level list (the sync reports "N ses suppressions")
REASONS = {"BOUNCE": DropReason.BOUNCED, "COMPLAINT": DropReason.COMPLAINED}


def _seconds(value: Any) -> int | None:
    if isinstance(value, dt.datetime):
        return int((value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp())
    return None


class SesSuppressions:
    """The account's suppression list (a SuppressionSource)."""

    provider = "ses"

    def __init__(self, config: SesConfig | None = None, client: Any = None) -> None:
        self.config = config or SesConfig()
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_client(self.config.region, pool=1, attempts=3)
        return self._client

    @property
    def mark(self) -> str:
        """What the sync's mark is kept under: the list is the region's."""
        return f"ses:{self.client.meta.region_name}"

    def _call(self, name: str, *, missing_ok: bool = False, **params: Any) -> Any:
        """The answer to one call; None for NotFoundException when `missing_ok`."""
        from botocore import exceptions as bx

        try:
            return getattr(self.client, name)(**params)
        except bx.ClientError as exc:
            code, message, status = error_parts(exc)
            if missing_ok and code == "NotFoundException":
                return None
            raise FailedError(f"SES answered {status} to {name}: {code}: {message}") from None
        except (bx.NoCredentialsError, bx.PartialCredentialsError) as exc:
            raise FailedError(f"no AWS credentials for SES ({exc})") from None
        except bx.BotoCoreError as exc:
            raise FailedError(f"cannot reach SES at {self.client.meta.endpoint_url}: "
                              f"{exc}") from None

    def pages(self, since: Since) -> Iterator[Page]:
        """The list a page at a time, from its mark on (all of it for a full sync)."""
        mark = self.mark
        params: dict[str, Any] = {"PageSize": PAGE}
        if since(mark):
            params["StartDate"] = dt.datetime.fromtimestamp(since(mark), dt.UTC)
        while True:
            answer = self._call("list_suppressed_destinations", **params)
            entries = []
            for entry in answer.get("SuppressedDestinationSummaries") or []:
                address, reason = entry.get("EmailAddress"), REASONS.get(entry.get("Reason"))
                if isinstance(address, str) and "@" in address and reason is not None:
                    entries.append(Suppression(address.strip(), reason,
                                               _seconds(entry.get("LastUpdateTime"))))
            yield Page(LIST, mark, entries)
            token = answer.get("NextToken")
            if not token:
                return
            params["NextToken"] = token

    def release(self, email: str) -> list[str]:
        """Take `email` off the list; [LIST] when it was on it (FailedError when SES cannot be
        asked)."""
        found = self._call("delete_suppressed_destination", missing_ok=True, EmailAddress=email)
        return [] if found is None else [LIST]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
