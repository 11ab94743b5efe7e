"""Polite, bounded HTTP for drafting: http(s) only, robots.txt honoured, one request per URL.

Every request names the tool in its User-Agent, must finish within the timeout, and is read as a
stream that is cut off past a size limit (a declared Content-Length over it is refused before
the body is read). Redirects are followed by hand, at most five, each hop checked like the
first. robots.txt follows RFC 9309: a 4xx answer allows everything, a 5xx answer or no answer
forbids everything on that site; it is fetched once per site.
"""

from __future__ import annotations

import ipaddress
import socket
import time
import urllib.parse
import urllib.robotparser
from dataclasses import dataclass

import httpx

from newsletter import __version__

USER_AGENT = f"newsletter-drafter/{__version__} (newsletter new --from-feed; one request per page)"
ROBOTS_AGENT = "newsletter-drafter"
MB = 1024 * 1024
MAX_PAGE = 5 * MB  # a feed or an article page
MAX_IMAGE = 10 * MB  # the hero image
MAX_ROBOTS = 512 * 1024  # RFC 9309 asks crawlers to read at least 500 KiB
MAX_REDIRECTS = 5
CHUNK = 64 * 1024


class FetchError(Exception):
    """A URL that could not be read, with a short reason (`kind`: scheme, address, robots,
    status, timeout, too-large, network)."""

    def __init__(self, url: str, kind: str, reason: str, status: int | None = None):
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.kind = kind
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Page:
    """A fetched resource: where it ended up, its media type and charset, and its bytes."""

    url: str
    content_type: str
    charset: str | None
    body: bytes

    def text(self) -> str | bytes:
        """The body as text when its charset is known or it is valid UTF-8; else the bytes
        (for lxml to read the page's own `<meta charset>`)."""
        for charset in filter(None, (self.charset, "utf-8")):
            try:
                return self.body.decode(charset)
            except (LookupError, UnicodeDecodeError):
                continue
        return self.body


def _size(count: int) -> str:
    return f"{count / MB:.1f} MB" if count >= MB else f"{count / 1024:.0f} KB"


def is_private(url: str) -> bool:
    """Whether `url`'s host is, or resolves to, an address that is not on the public internet
    (loopback, a private or link-local network, ...)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        try:
            found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            return False  # the request itself will fail and say why
        addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in found}
    return any(not a.is_global for a in addresses)


def is_web_url(url: str) -> bool:
    """Whether `url` is an absolute http(s) URL with a host."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


class Fetcher:
    """Fetches pages for one draft; remembers every answer, so each URL is requested once.

    With `public_only`, no address off the public internet is requested: a feed on the public
    internet cannot make the drafter read the machine's own services or its network's.
    """

    def __init__(self, *, timeout: float = 10.0, user_agent: str = USER_AGENT,
                 public_only: bool = False):
        self.timeout = timeout
        self.user_agent = user_agent
        self.public_only = public_only
        self._private: dict[str, bool] = {}  # host -> is_private
        # The environment's proxy and SSL_CERT_FILE settings apply, as in any HTTP client.
        self.client = httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False,
                                   headers={"User-Agent": user_agent})
        self._robots: dict[str, urllib.robotparser.RobotFileParser] = {}
        self._seen: dict[str, Page | FetchError] = {}

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, url: str, *, max_bytes: int = MAX_PAGE) -> Page:
        """GET `url` (once per draft), or raise FetchError saying why not."""
        known = self._seen.get(url)
        if known is None:
            try:
                known = self._get(url, max_bytes)
            except FetchError as exc:
                known = exc
            self._seen[url] = known
        if isinstance(known, FetchError):
            raise known
        return known

    def _get(self, url: str, max_bytes: int) -> Page:
        for _hop in range(MAX_REDIRECTS + 1):
            if not is_web_url(url):
                raise FetchError(url, "scheme", "not an http(s) URL; not fetched")
            if self.public_only and self._is_private(url):
                raise FetchError(url, "address", "its address is not on the public internet "
                                                 "(the feed's is); not fetched")
            if not self.allowed(url):
                raise FetchError(url, "robots", "the site's robots.txt disallows it; not fetched")
            page, location = self._request(url, max_bytes)
            if page is not None:
                return page
            url = location
        raise FetchError(url, "status", f"more than {MAX_REDIRECTS} redirects")

    def _request(self, url: str, max_bytes: int) -> tuple[Page | None, str]:
        """One GET: the page, or (None, the URL a redirect points to)."""
        deadline = time.monotonic() + self.timeout
        try:
            with self.client.stream("GET", url) as response:
                if response.is_redirect and "location" in response.headers:
                    return None, urllib.parse.urljoin(url, response.headers["location"])
                if response.status_code >= 400:
                    raise FetchError(url, "status", f"the server answered {response.status_code}",
                                     response.status_code)
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise FetchError(url, "too-large", f"it is {_size(int(declared))}, over "
                                                       f"the {_size(max_bytes)} limit")
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise FetchError(url, "too-large",
                                         f"cut off past the {_size(max_bytes)} limit")
                    if time.monotonic() > deadline:
                        raise FetchError(url, "timeout", f"not complete after {self.timeout:g} s")
                    chunks.append(chunk)
                kind = response.headers.get("content-type", "")
                media = kind.split(";")[0].strip().lower()
                charset = response.charset_encoding if kind else None
                return Page(str(response.url), media, charset, b"".join(chunks)), ""
        except httpx.TimeoutException:
            raise FetchError(url, "timeout", f"no answer within {self.timeout:g} s") from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise FetchError(url, "scheme", f"not a usable URL ({exc})") from None
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise FetchError(url, "network", f"could not be read ({reason})") from None

    def _is_private(self, url: str) -> bool:
        host = urllib.parse.urlsplit(url).hostname or ""
        if host not in self._private:
            self._private[host] = is_private(url)
        return self._private[host]

    def allowed(self, url: str) -> bool:
        """Whether the site's robots.txt lets this tool fetch `url`."""
        parts = urllib.parse.urlsplit(url)
        site = f"{parts.scheme}://{parts.netloc}"
        robots = self._robots.get(site)
        if robots is None:
            robots = self._robots[site] = self._read_robots(site)
        return robots.can_fetch(ROBOTS_AGENT, url)

    def _read_robots(self, site: str) -> urllib.robotparser.RobotFileParser:
        robots = urllib.robotparser.RobotFileParser(f"{site}/robots.txt")
        url = robots.url
        try:
            for _hop in range(MAX_REDIRECTS + 1):
                page, location = self._request(url, MAX_ROBOTS)
                if page is not None:
                    robots.parse(page.body.decode("utf-8", "replace").splitlines())
                    return robots
                if not is_web_url(location):
                    break
                url = location  # followed across sites too (RFC 9309 2.3.1.2)
            robots.allow_all = True
        except FetchError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                robots.allow_all = True  # no robots.txt: everything is allowed
            else:
                robots.disallow_all = True  # unreachable: assume nothing is
        return robots
