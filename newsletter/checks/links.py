"""Links and images: absolute http(s) or mailto links, no data: URIs or shorteners, alt text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from newsletter.checks.model import ERROR, WARNING, Context, Finding
from newsletter.compose.fields import check_address
from newsletter.core.personalise import PLACEHOLDER

SHORTENERS = frozenset(
    """bit.ly bitly.com tinyurl.com t.co goo.gl ow.ly is.gd buff.ly rebrand.ly cutt.ly
    shorturl.at tiny.cc rb.gy lnkd.in bl.ink t.ly s.id v.gd soo.gd clck.ru tr.im x.co
    shorte.st adf.ly bit.do mcaf.ee su.pr qr.ae po.st dlvr.it ift.tt trib.al db.tt""".split()
)
CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)")


@dataclass(frozen=True)
class Ref:
    """A URL in the HTML: a link (href) or an image (src, background)."""

    kind: str  # "link" or "image"
    url: str
    tag: str


def references(ctx: Context) -> list[Ref]:
    """Every link and image URL in the email HTML, in document order."""
    refs = []
    for el in ctx.doc.iter():
        if not isinstance(el.tag, str):
            continue
        if el.tag in ("a", "area") and el.get("href") is not None:
            refs.append(Ref("link", el.get("href", "").strip(), el.tag))
        if el.tag == "img":
            refs.append(Ref("image", (el.get("src") or "").strip(), "img"))
        if el.get("background"):
            refs.append(Ref("image", el.get("background", "").strip(), el.tag))
        for url in CSS_URL.findall(el.get("style", "")):
            refs.append(Ref("image", url.strip(), el.tag))
    return refs


def is_placeholder(url: str) -> bool:
    """A URL filled in per recipient at send time, such as %%unsubscribe_url%% (optionally
    followed by a query, as in %%preferences_url%%?stop=energy)."""
    match = PLACEHOLDER.match(url)
    return bool(match) and url[match.end():][:1] in ("", "?")


def https_hosts(ctx: Context, refs: list[Ref]) -> set[str]:
    """Hosts known to serve https: the publication's own, and any linked with https."""
    config = ctx.pub.config
    hosts = {urlsplit(config.archive_url).hostname, urlsplit(config.public_url).hostname}
    hosts |= {urlsplit(r.url).hostname for r in refs if r.url.lower().startswith("https://")}
    return {h for h in hosts if h}


def url_problem(ref: Ref, secure_hosts: set[str]) -> tuple[str, str, str, str] | None:
    """(severity, check, message, fix) for one URL, or None when it is fine."""
    url, what = ref.url, ref.kind
    lowered = url.lower()
    if not url:
        return ERROR, f"links.{what}-empty", f"a {what} has an empty URL", "fill in the URL"
    if is_placeholder(url):
        return None
    if lowered.startswith("data:"):
        return (
            ERROR,
            "links.data-uri",
            f"{what} uses a data: URI, which most clients block",
            "host the file on the web and use its https:// URL",
        )
    if lowered.startswith("mailto:"):
        if what == "image":
            return ERROR, "links.relative", "image URL is a mailto: link", "use an https:// URL"
        address = url[7:].split("?", 1)[0]
        try:
            check_address(address)
        except ValueError:
            return (
                ERROR,
                "links.mailto",
                f"mailto: link to a malformed address '{address}'",
                "fix the address",
            )
        return None
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        kind = "relative" if not parts.scheme else f"'{parts.scheme}:'"
        return (
            ERROR,
            "links.relative",
            f"{what} URL is {kind}, which does not work in an email",
            "use an absolute https:// URL (or mailto: for email addresses)",
        )
    host = (parts.hostname or "").lower()
    if " " in url or not host or "." not in host and host != "localhost":
        return ERROR, "links.malformed", f"malformed {what} URL", "check the URL for typos"
    if host.removeprefix("www.") in SHORTENERS:
        return (
            WARNING,
            "links.shortener",
            f"link goes through the URL shortener {host}; spam filters distrust shorteners "
            "and readers cannot see where it leads",
            "link to the destination itself",
        )
    if parts.scheme.lower() == "http":
        expected = host in secure_hosts
        return (
            ERROR if expected else WARNING,
            "links.http",
            f"{what} uses http: "
            + ("although this site is linked with https: elsewhere" if expected else "not https:"),
            "use the https:// address",
        )
    return None


def check_links(ctx: Context) -> list[Finding]:
    refs = references(ctx)
    secure = https_hosts(ctx, refs)
    findings: list[Finding] = []
    reported: set[tuple[str, str]] = set()
    for ref in refs:
        problem = url_problem(ref, secure)
        if problem and (problem[1], ref.url) not in reported:
            reported.add((problem[1], ref.url))
            severity, check, message, fix = problem
            findings.append(
                ctx.finding(
                    severity,
                    check,
                    message,
                    fix,
                    needle=ref.url or None,
                    excerpt_text=f'<{ref.tag} … "{ref.url}">',
                )
            )
    findings += check_images(ctx)
    return findings


def check_images(ctx: Context) -> list[Finding]:
    """Every <img> has alt text (empty alt only for decorative images)."""
    findings = []
    for img in ctx.doc.iter("img"):
        src = img.get("src", "")
        alt = img.get("alt")
        if alt is None:
            findings.append(
                ctx.finding(
                    ERROR,
                    "links.image-alt",
                    "image has no alt text; screen readers and clients that block images "
                    "show nothing useful",
                    "describe the image in its alt text (hero: `alt:` in issue.yaml)",
                    needle=src or None,
                    excerpt_text=f'<img src="{src}">',
                )
            )
        elif not alt.strip():
            findings.append(
                ctx.finding(
                    WARNING,
                    "links.image-alt-empty",
                    "image has empty alt text, so it is treated as decoration",
                    "describe the image unless it is purely decorative",
                    needle=src or None,
                    excerpt_text=f'<img src="{src}" alt="">',
                )
            )
    return findings
