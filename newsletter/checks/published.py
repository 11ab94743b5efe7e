"""Before `send`: is the issue's web copy online, and does every image in it answer?

Every email links to `<archive_url><slug>/` and shows its images from the web; a send before
they are published shows readers broken images. `check_published` asks each URL once, in
parallel with short timeouts: the web copy must answer 200 with text/html, each image 200
with an image/* type. Per-recipient URLs (with %%placeholders%%) are not asked.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from lxml import html as lxml_html

from newsletter.compose import Build
from newsletter.compose.publication import Publication
from newsletter.core.words import plural

TIMEOUT_S = 5.0
WORKERS = 16
USER_AGENT = "newsletter-send/1 (published-copy check)"
PAGE, IMAGE = "text/html", "image/"


@dataclass(frozen=True)
class Answer:
    """How one URL answered, against the type it must have."""

    url: str
    expected: str  # "text/html" or "image/" (a prefix)
    status: int | None = None
    content_type: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.content_type.lower().startswith(self.expected)

    def problem(self) -> str:
        if self.error:
            return self.error
        if self.status != 200:
            return f"HTTP {self.status}"
        want = "an image type" if self.expected == IMAGE else self.expected
        return f"Content-Type {self.content_type or '(none)'}, expected {want}"


@dataclass
class UrlCheck:
    """The answers of every URL of an issue and how long asking took."""

    answers: list[Answer] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failures(self) -> list[Answer]:
        return [a for a in self.answers if not a.ok]

    @property
    def ok(self) -> bool:
        return not self.failures

    def line(self) -> str:
        """One line for the send plan."""
        total, bad = len(self.answers), len(self.failures)
        if bad:
            verb = "does" if bad == 1 else "do"
            return (f"{bad} of {plural(total, 'URL')} of the issue {verb} not answer "
                    f"({self.seconds:.1f} s)")
        images = "no image URLs" if total == 1 else plural(total - 1, "image URL")
        return (f"the web copy and {images} answer 200 with the right type "
                f"({self.seconds:.1f} s)")


def issue_urls(pub: Publication, build: Build) -> list[tuple[str, str]]:
    """(url, expected type): the web copy first, then every http(s) image of the email."""
    urls = {f"{pub.config.archive_url}{build.slug}/": PAGE}
    for markup in (build.html, build.web_html):
        for src in lxml_html.fromstring(markup).xpath("//img/@src"):
            src = str(src).strip()
            if src.startswith(("http://", "https://")) and "%%" not in src:
                urls.setdefault(src, IMAGE)
    return list(urls.items())


def _ask(client, url: str, expected: str) -> Answer:
    import httpx

    try:
        with client.stream("GET", url) as response:  # headers only: the body is not read
            return Answer(url, expected, response.status_code,
                          response.headers.get("content-type", ""))
    except httpx.TimeoutException:
        return Answer(url, expected, error=f"no answer within {TIMEOUT_S:g} s")
    except httpx.HTTPError as exc:
        return Answer(url, expected, error=str(exc) or type(exc).__name__)


def check_urls(urls: list[tuple[str, str]], timeout: float = TIMEOUT_S) -> UrlCheck:
    """Ask every URL in parallel; answers keep the order of `urls`."""
    import httpx

    started = time.perf_counter()
    with httpx.Client(timeout=timeout, follow_redirects=True,
                      headers={"User-Agent": USER_AGENT}) as client, \
            ThreadPoolExecutor(max_workers=min(WORKERS, max(1, len(urls)))) as pool:
        answers = list(pool.map(lambda item: _ask(client, *item), urls))
    return UrlCheck(answers, time.perf_counter() - started)


def check_published(pub: Publication, build: Build, timeout: float = TIMEOUT_S) -> UrlCheck:
    """Check the web copy and every image URL of a built issue."""
    return check_urls(issue_urls(pub, build), timeout)
