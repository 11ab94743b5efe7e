"""execute()'s hooks for a send, where dispatch meets the public side's click tracking
(newsletter.events.tracking): the CLI's `send` and `serve`'s welcome and subject tests use the
same ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from newsletter.events.tracking import LinkUrls, track_like, track_links


def send_hooks(plan: Any) -> dict[str, Any]:
    """`prepare` and `link_urls` for `plan` (a dispatch SendPlan): a new send records its
    links and pieces and, with click tracking on, gets tracked links; a send carrying an
    earlier one's frozen message (`links_from`: a subject test's) records that one's; a
    resumed send's tracked links are filled again."""

    def prepare(mailing: Any, send_id: int) -> Any:
        links_from = getattr(plan, "links_from", None)
        if plan.build is None:
            if links_from is None:
                return mailing
            return track_like(plan.pub, plan.ledger.engine, links_from, send_id, mailing,
                              plan.artifact.links)
        return track_links(plan.pub, plan.build, plan.ledger.engine, send_id, mailing)

    def link_urls(public_url: str, send_id: int, links: Mapping[int, str]) -> Any:
        return LinkUrls(public_url, plan.pub.settings.secret or "", send_id, dict(links))

    return {"prepare": prepare, "link_urls": link_urls}

