"""Human or machine: the rules that decide whether an open or a click was made by a person.

Opens and clicks are inflated by machines. Reports show human figures first, engagement
segments (`opened`, `clicked`, `engaged_within`) and `subscribers sunset` count humans only.
Every rule is here; the thresholds come from newsletter.yaml `tracking:` (`Thresholds`).

Opens
- ``provider``: SendGrid marks an open `sg_machine_open: true` when it knows a machine fetched
  the tracking pixel (Apple Mail Privacy Protection prefetches every image of every message).
- ``proxy``: the user agent is a known image proxy that fetches on arrival, not on reading
  (Apple's bare `Mozilla/5.0`, Yahoo's and Google's image proxies when they prefetch, ...).

Clicks
- ``agent``: the user agent names a link scanner or an HTTP library (Proofpoint, Mimecast,
  Barracuda, Microsoft's Safe Links, python-requests, curl, headless browsers ...); people
  click in mail clients and browsers.
- ``too-soon``: the click came within `scanner_delay_s` seconds of delivery. Corporate and
  government gateways follow every link before handing the message over; people need longer
  than a few seconds to open a message, read and click.
- ``burst``: the recipient "clicked" `burst_links` or more different links of the same message
  within `burst_window_s` seconds. A person opens one link at a time; scanners open them all
  at once. Every click of the burst is a machine's.

An event no rule marks is a human's. Verdicts are made when an event is stored (webhook or our
redirect) and a burst found later re-marks the earlier clicks it includes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from newsletter.core.privacy import truncate_ip

__all__ = ["Thresholds", "bursts", "click_reason", "open_reason", "truncate_ip"]

PROVIDER, PROXY, AGENT, TOO_SOON, BURST = "provider", "proxy", "agent", "too-soon", "burst"

#: Lower-cased substrings of user agents that are image proxies fetching on arrival.
PROXY_AGENTS = ("googleimageproxy", "yahoomailproxy", "ymailproxy", "outlook-imageproxy",
                "via ggpht.com")
#: Apple Mail Privacy Protection fetches with exactly this agent.
APPLE_PROXY_AGENT = "mozilla/5.0"
#: Lower-cased substrings of user agents that are scanners, libraries or crawlers.
SCANNER_AGENTS = ("proofpoint", "mimecast", "barracuda", "safelinks", "symantec", "trendmicro",
                  "fortiguard", "forcepoint", "sophos", "cisco", "ironport", "zscaler",
                  "python-requests", "python-urllib", "httpx", "aiohttp", "curl/", "wget/",
                  "go-http-client", "java/", "okhttp", "libwww", "headlesschrome", "phantomjs",
                  "bot", "crawler", "spider", "scanner", "urlscan")


@dataclass(frozen=True)
class Thresholds:
    """The rules' numbers (newsletter.yaml `tracking:`; defaults below)."""

    scanner_delay_s: int = 10
    burst_window_s: int = 2
    burst_links: int = 3

    @classmethod
    def of(cls, tracking: object) -> Thresholds:
        """From a TrackingConfig (or anything with the same attributes)."""
        return cls(**{name: getattr(tracking, name) for name in
                      ("scanner_delay_s", "burst_window_s", "burst_links")})


def open_reason(user_agent: str | None, provider_machine: bool | None) -> str | None:
    """Why an open is a machine's, or None for a human's."""
    if provider_machine:
        return PROVIDER
    agent = (user_agent or "").strip().lower()
    if agent == APPLE_PROXY_AGENT or any(p in agent for p in PROXY_AGENTS):
        return PROXY
    return None


def agent_reason(user_agent: str | None) -> str | None:
    """`agent` when a click's user agent is a scanner's, else None."""
    agent = (user_agent or "").strip().lower()
    return AGENT if any(s in agent for s in SCANNER_AGENTS) else None


def click_reason(at: int, user_agent: str | None, delivered_at: int | None,
                 limits: Thresholds) -> str | None:
    """The rules that look at one click alone: scanner agent, then too soon after delivery."""
    found = agent_reason(user_agent)
    if found:
        return found
    if delivered_at is not None and at and 0 <= at - delivered_at <= limits.scanner_delay_s:
        return TOO_SOON
    return None


@dataclass(frozen=True, slots=True)
class Click:
    """One click of one recipient's message: its key (an event id), time and link."""

    key: str
    at: int
    position: int | None


def bursts(clicks: Iterable[Click], limits: Thresholds) -> set[str]:
    """Keys of the clicks (of ONE recipient's message) that are part of a burst: at least
    `burst_links` different links within `burst_window_s` seconds."""
    ordered = sorted(clicks, key=lambda c: (c.at, c.key))
    found: set[str] = set()
    start = 0
    for end in range(len(ordered)):
        while ordered[end].at - ordered[start].at > limits.burst_window_s:
            start += 1
        window = ordered[start : end + 1]
        if len({c.position if c.position is not None else c.key for c in window}) \
                >= limits.burst_links:
            found.update(c.key for c in window)
    return found
