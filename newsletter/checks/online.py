"""`--online`: does every link and image answer? HEAD, then GET; in parallel, with a timeout."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from newsletter.checks.links import is_placeholder, references
from newsletter.checks.model import ERROR, WARNING, Context, Finding

KB = 1024
MAX_REMOTE_IMAGE = 1024 * KB
WORKERS = 16
USER_AGENT = "newsletter-check/1 (link checker)"


@dataclass(frozen=True)
class Answer:
    """How a URL answered: a final HTTP status, or the error that stopped it."""

    url: str
    status: int | None = None
    error: str | None = None
    length: int | None = None  # bytes, from Content-Length or counted (up to a limit)

    @property
    def ok(self) -> bool:
        return self.status is not None and self.status < 400


def probe(client, url: str) -> Answer:
    """HEAD the URL; if that fails or is refused, GET it (some servers refuse HEAD)."""
    import httpx

    answer = Answer(url)
    for method in ("HEAD", "GET"):
        try:
            with client.stream(method, url) as response:
                answer = Answer(url, status=response.status_code, length=_length(response))
        except httpx.TimeoutException:
            answer = Answer(url, error="timed out")
        except httpx.HTTPError as exc:
            answer = Answer(url, error=str(exc) or type(exc).__name__)
        if answer.ok:
            return answer
    return answer


def _length(response) -> int | None:
    """The body size: Content-Length, or for a GET without it, bytes read up to a limit."""
    header = response.headers.get("content-length", "")
    if header.isdigit():
        return int(header)
    if response.request.method != "GET" or response.status_code >= 400:
        return None
    count = 0
    for chunk in response.iter_bytes():
        count += len(chunk)
        if count > MAX_REMOTE_IMAGE:
            break
    return count


def probe_all(urls: list[str], timeout: float, workers: int = WORKERS) -> list[Answer]:
    """Probe `urls` in parallel; each request gives up after `timeout` seconds."""
    import httpx

    if not urls:
        return []
    with httpx.Client(
        follow_redirects=True,
        timeout=timeout,
        headers={"User-Agent": USER_AGENT},
        limits=httpx.Limits(max_connections=workers),
    ) as client:
        with ThreadPoolExecutor(max_workers=min(workers, len(urls))) as pool:
            return list(pool.map(lambda url: probe(client, url), urls))


def check_online(ctx: Context) -> list[Finding]:
    urls = []
    images = set()
    for ref in references(ctx):
        url = ref.url
        if url.lower().startswith(("http://", "https://")) and not is_placeholder(url):
            if url not in urls:
                urls.append(url)
            if ref.kind == "image":
                images.add(url)
    findings = []
    for answer in probe_all(urls, ctx.timeout):
        if answer.ok:
            if answer.url in images and (answer.length or 0) > MAX_REMOTE_IMAGE:
                findings.append(
                    ctx.finding(
                        WARNING,
                        "images.remote-heavy",
                        f"remote image is {answer.length / KB:.0f} KB (over "
                        f"{MAX_REMOTE_IMAGE // KB} KB): {answer.url}",
                        "put a smaller copy in the issue folder; the build resizes it",
                        needle=answer.url,
                        excerpt_text=answer.url,
                    )
                )
            continue
        if answer.status is not None:
            message = f"link answers HTTP {answer.status}: {answer.url}"
            severity = ERROR
        else:
            message = f"link does not answer ({answer.error}): {answer.url}"
            severity = WARNING if answer.error == "timed out" else ERROR
        findings.append(
            ctx.finding(
                severity,
                "links.online",
                message,
                "fix or remove the link (or retry if the site was briefly down)",
                needle=answer.url,
                excerpt_text=answer.url,
            )
        )
    return findings
