"""The inline stage and the page passes: one inlining per copy, no network, lazy Pillow."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import lxml.html
import pytest

from newsletter.compose import build_issue
from newsletter.compose.inline import inline_css
from newsletter.compose.publication import Publication
from tests.compose.helpers import SAMPLE, replace_in
from tests.conftest import ROOT


def _styles(html: str, tag: str) -> list[str | None]:
    return [e.get("style") for e in lxml.html.document_fromstring(html).iter(tag)]


def test_the_web_copy_is_inlined_like_the_email(publication: Path) -> None:
    """The web copy's inlining finds the parsed CSS cached by the email's: same styles."""
    build = build_issue(Publication.load(publication), SAMPLE)
    for tag in ("h2", "img", "li"):
        assert _styles(build.web_html, tag) == _styles(build.html, tag)
    assert all(style and "font-family" in style for style in _styles(build.web_html, "h2"))


def test_tracked_html_is_the_inlined_email_with_link_placeholders(publication: Path) -> None:
    """With click tracking, the tracked copy comes from the email's inlined page: put the
    URLs back in place of the placeholders and it is the email, byte for byte."""
    config = publication / "newsletter.yaml"
    config.write_text(config.read_text() + "tracking: {clicks: true}\n")
    build = build_issue(Publication.load(publication), SAMPLE)
    assert build.tracked_html is not None and "%%link|1%%" in build.tracked_html
    urls = {str(link.position): link.url for link in build.links}
    restored = re.sub(r"%%link\|(\d+)%%", lambda m: urls[m.group(1)], build.tracked_html)
    assert restored == build.html
    assert 'http-equiv="Content-Type"' in build.tracked_html


class _Counting(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.hits.append(self.path)
        body = b"h2 { color: #ff0000; }"
        self.send_response(200)
        self.send_header("Content-Type", "text/css")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_the_build_never_fetches_a_stylesheet(publication: Path) -> None:
    """A template linking a remote stylesheet builds without premailer fetching it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/house.css"
        replace_in(publication / "templates" / "default" / "email.mjml.j2", "<mj-attributes>",
                   f'<mj-raw><link rel="stylesheet" href="{url}"></mj-raw>\n    <mj-attributes>')
        build = build_issue(Publication.load(publication), SAMPLE)
    finally:
        server.shutdown()
        server.server_close()
    assert url in build.html  # the link is still there, for clients that load it
    assert _Counting.hits == []
    assert "#ff0000" not in build.html


def test_a_floated_image_gets_the_align_attribute_outlook_reads() -> None:
    html = inline_css(
        "<html><head><style>img.side { float: right; width: 100%; max-width: 200px }</style>"
        '</head><body><img class="side" src="a.png"><img src="b.png"></body></html>'
    )
    side, plain = lxml.html.document_fromstring(html).iter("img")
    assert (side.get("align"), side.get("width")) == ("right", "200")
    assert plain.get("align") is None


@pytest.mark.slow
def test_a_new_process_reuses_processed_images_and_parsed_css(publication: Path) -> None:
    """Pillow loads when an image has to be processed, not when every image is cached (and
    requests never); the template's parsed style blocks read back from disk give the same
    pages as parsing them."""
    script = (
        "import hashlib, sys; from pathlib import Path\n"
        "from newsletter.compose import build_issue, write_build\n"
        "from newsletter.compose.publication import Publication\n"
        f"pub = Publication.load(Path({str(publication)!r}))\n"
        f"build = build_issue(pub, {SAMPLE!r}); write_build(pub, build)\n"
        "assert build.images.by_source, 'the sample has local images'\n"
        "pages = (build.html + build.web_html).encode()\n"
        "assert 'requests' not in sys.modules, 'premailer loads without requests'\n"
        "print('PIL' in sys.modules, hashlib.sha256(pages).hexdigest())\n"
    )

    def run() -> list[str]:
        return subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.split()

    css = publication / ".newsletter" / "cache" / "css"
    first = run()  # images processed, style blocks parsed
    assert first[0] == "True" and list(css.glob("*.json"))
    second = run()  # a new process: images and parsed style blocks from the disk caches
    assert second == ["False", first[1]]
    for stored in css.glob("*.json"):
        stored.write_text("{not json")
    assert run() == ["False", first[1]]  # an unreadable entry is parsed again


def test_a_rebuild_sees_an_edited_translation(publication: Path) -> None:
    """Edition groups come from every issue's manifest, kept per process: an edit to another
    issue's manifest (here one of the same size) still shows in the next build."""
    pub = Publication.load(publication)
    assert "2026-11-24-ar/" in build_issue(pub, SAMPLE).web_html
    replace_in(publication / "issues" / "2026-11-24-ar" / "issue.yaml",
               "translation_of: 2026-11-24", "translation_of: 2026-11-17")
    assert "2026-11-24-ar/" not in build_issue(pub, SAMPLE).web_html
