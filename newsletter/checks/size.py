"""Size: Gmail clips an HTML part over about 102 KB; very large messages hurt delivery.

With click tracking on, the HTML part is measured after its links are rewritten to redirect
URLs (newsletter.yaml `tracking: {clicks: true}`), as subscribers will get it.
"""

from __future__ import annotations

from newsletter.checks.model import ERROR, WARNING, Context, Finding
from newsletter.core.personalise import (
    PLACEHOLDER,
    SAMPLE_RECIPIENT,
    placeholders_in,
    substitute,
    values,
)
from newsletter.core.tokens import SAMPLE_SECRET, click_url, link_token, unsubscribe_url

KB = 1024
HTML_WARN, HTML_ERROR = 90 * KB, 102 * KB
MESSAGE_WARN, MESSAGE_ERROR = 500 * KB, 10 * KB * KB


#: a long send id and a long address, so the tracked size measured is an upper bound
_SAMPLE_SEND, _SAMPLE_EMAIL = 10**9, "firstname.lastname.reader@subscribers.example.org"


def html_part_size(ctx: Context) -> int:
    """Bytes of the HTML part as a subscriber gets it (placeholders filled), or as built."""
    sizes = [len(ctx.build.html.encode("utf-8"))]
    for part in ctx.message.walk():
        if part.get_content_type() == "text/html":
            sizes.append(len(part.get_content().encode("utf-8")))
    return max(sizes)


def tracked_html_size(ctx: Context) -> int | None:
    """Bytes of the HTML part after click tracking rewrote its links (None when it is off):
    every tracked link becomes a signed redirect URL, longer than most links it replaces."""
    tracked = ctx.build.tracked_html
    if tracked is None:
        return None
    public, secret = ctx.pub.config.public_url, ctx.pub.settings.secret or SAMPLE_SECRET
    found = placeholders_in(tracked)
    mapping = values(SAMPLE_RECIPIENT, found, unsubscribe_url(public, secret, _SAMPLE_EMAIL))
    for text in found:
        match = PLACEHOLDER.fullmatch(text)
        if match and match.group(1) == "link":
            position = int(match.group(2) or 0)
            mapping[text] = click_url(public, link_token(secret, _SAMPLE_SEND, position,
                                                         _SAMPLE_EMAIL))
    return len(substitute(tracked, mapping, as_html=True).encode("utf-8"))


def sizes(ctx: Context) -> dict[str, int]:
    found = {"html": html_part_size(ctx), "message": len(ctx.build.message)}
    tracked = tracked_html_size(ctx)
    if tracked is not None:
        found["html_tracked"] = tracked
        found["html"] = max(found["html"], tracked)
    return found


def check_size(ctx: Context) -> list[Finding]:
    found = sizes(ctx)
    html, message = found["html"], found["message"]
    ctx.extra["sizes"] = found
    findings = []
    if html >= HTML_WARN:
        severity = ERROR if html >= HTML_ERROR else WARNING
        findings.append(
            Finding(
                severity,
                "size.html",
                f"the HTML part is {html / KB:.1f} KB"
                + (" with click tracking's links" if "html_tracked" in found else "")
                + "; Gmail clips messages over 102 KB "
                "and hides the rest (including the unsubscribe link) behind a link",
                "shorten the issue or split it: fewer or shorter pieces",
                part="html",
                excerpt=f"{html} bytes",
            )
        )
    if message >= MESSAGE_WARN:
        severity = ERROR if message >= MESSAGE_ERROR else WARNING
        findings.append(
            Finding(
                severity,
                "size.message",
                f"the whole message is {message / KB:.0f} KB; spam filters skip or penalise "
                "large messages and many servers refuse those over 10 MB",
                "link images from the web instead of embedding them; shorten the issue",
                part="message",
                excerpt=f"{message} bytes",
            )
        )
    return findings
