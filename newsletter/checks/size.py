"""Size: Gmail clips an HTML part over about 102 KB; very large messages hurt delivery."""

from __future__ import annotations

from newsletter.checks.model import ERROR, WARNING, Context, Finding

KB = 1024
HTML_WARN, HTML_ERROR = 90 * KB, 102 * KB
MESSAGE_WARN, MESSAGE_ERROR = 500 * KB, 10 * KB * KB


def html_part_size(ctx: Context) -> int:
    """Bytes of the HTML part as a subscriber gets it (placeholders filled), or as built."""
    sizes = [len(ctx.build.html.encode("utf-8"))]
    for part in ctx.message.walk():
        if part.get_content_type() == "text/html":
            sizes.append(len(part.get_content().encode("utf-8")))
    return max(sizes)


def sizes(ctx: Context) -> dict[str, int]:
    return {"html": html_part_size(ctx), "message": len(ctx.build.message)}


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
                f"the HTML part is {html / KB:.1f} KB; Gmail clips messages over 102 KB "
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
