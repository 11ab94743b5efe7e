"""Mailgun's suppression lists of the sending domain: bounces, complaints and unsubscribes,
`GET /v3/<domain>/<list>?limit=1000`, each answering `{"items": [{"address", "created_at",
...}], "paging": {"next": URL, ...}}`; pages are followed through `paging.next` until a page
comes back empty. Mailgun cannot filter these lists by time: every sync reads them whole.

`release` is the other direction: after a confirmed sign-up it deletes the address from the
three lists (`DELETE /v3/<domain>/<list>/<address>`; 404 means it was not on that list), so
that Mailgun delivers to someone who asked again instead of dropping the message (and
reporting a `failed` event, `suppress-bounce`... , that would retire them here again).
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterator
from urllib.parse import parse_qsl, quote, urlsplit

from newsletter.core.errors import FailedError
from newsletter.providers.events import DropReason
from newsletter.providers.mailgun.api import api, error_text
from newsletter.providers.neutral import Page, Since, Suppression

PAGE = 1000  # Mailgun's largest page
LISTS = {"bounces": DropReason.BOUNCED, "complaints": DropReason.COMPLAINED,
         "unsubscribes": DropReason.UNSUBSCRIBED}
MARK = "mailgun"  # the sync's mark of all three lists
MAX_PAGES = 100_000  # a guard against a `next` link that never ends


def unix(text: object) -> int | None:
    """Unix seconds from Mailgun's RFC 2822 times ("Fri, 21 Oct 2011 11:02:55 UTC")."""
    if not isinstance(text, str):
        return None
    try:
        return int(email.utils.parsedate_to_datetime(text).timestamp())
    except (TypeError, ValueError, IndexError):
        return None


class MailgunSuppressions:
    """The domain's three lists, page by page."""

    provider = "mailgun"

    def __init__(self, key: str | None, domain: str | None, url: str):
        self.api = api(key, domain, url)
        self.domain = domain or ""

    def pages(self, since: Since) -> Iterator[Page]:
        """Every list whole (Mailgun's lists cannot be read from a time on); the newest entry
        is kept under the mark `mailgun` all the same."""
        since(MARK)
        for name, reason in LISTS.items():
            prefix = f"/v3/{quote(self.domain)}/{name}"
            target, params = prefix, {"limit": str(PAGE)}
            for _ in range(MAX_PAGES):
                reply = self.api.call(f"reading the {name} list", "GET", target,
                                      key_hint="MAILGUN_API_KEY", message=error_text,
                                      params=params)
                found = reply.json()
                items = found.get("items") if isinstance(found, dict) else None
                if reply.status != 200 or not isinstance(items, list):
                    raise FailedError(f"unexpected answer from Mailgun's {name} list: "
                                      f"{error_text(reply.body) or reply.status}")
                entries = [Suppression(item["address"].strip(), reason,
                                       unix(item.get("created_at")))
                           for item in items if isinstance(item, dict)
                           and isinstance(item.get("address"), str)]
                if not items:
                    break
                yield Page(name, MARK, entries)
                target, params = self._next(found, prefix)
                if target is None:
                    break

    @staticmethod
    def _next(found: dict, prefix: str) -> tuple[str | None, dict]:
        """The next page as a path and query under this list (a link elsewhere is refused:
        the credentials go only to Mailgun's own list)."""
        paging = found.get("paging")
        link = paging.get("next") if isinstance(paging, dict) else None
        if not isinstance(link, str):
            return None, {}
        parts = urlsplit(link)
        if parts.path != prefix:
            raise FailedError(f"Mailgun's next page points outside the list: {link[:200]}")
        return parts.path, dict(parse_qsl(parts.query))

    def release(self, email: str) -> list[str]:
        """Delete `email` from each list; the lists it was on."""
        address = quote(email, safe="@")
        released = []
        for name in LISTS:
            reply = self.api.call(f"taking an address off the {name} list", "DELETE",
                                  f"/v3/{quote(self.domain)}/{name}/{address}",
                                  key_hint="MAILGUN_API_KEY", message=error_text)
            if reply.status != 404:
                released.append(name)
        return released

    def close(self) -> None:
        self.api.close()
