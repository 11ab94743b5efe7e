"""The inline stage and the page passes: one inlining per copy, no network, lazy Pillow."""

from __future__ import annotations

import json
import pickle
import re
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import lxml.html
import pytest

from newsletter.compose import build_issue, css
from newsletter.compose.inline import inline_css, inline_tree
from newsletter.compose.publication import Publication
from newsletter.core.html import parse_page
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
    """Pillow loads when an image has to be processed, not when every image is cached; the
    CSS parser and the selector translator load only when a style is new: the parsed CSS read
    back from disk gives the same pages as parsing it, and an unreadable entry is parsed
    again."""
    script = (
        "import hashlib, sys; from pathlib import Path\n"
        "from newsletter.compose import build_issue, write_build\n"
        "from newsletter.compose.publication import Publication\n"
        f"pub = Publication.load(Path({str(publication)!r}))\n"
        f"build = build_issue(pub, {SAMPLE!r}); write_build(pub, build)\n"
        "assert build.images.by_source, 'the sample has local images'\n"
        "pages = (build.html + build.web_html).encode()\n"
        "assert not {'premailer', 'requests'} & set(sys.modules)\n"
        "parsers = sorted({'PIL', 'cssutils', 'cssselect'} & set(sys.modules))\n"
        "print(','.join(parsers) or '-', hashlib.sha256(pages).hexdigest())\n"
    )

    def run() -> list[str]:
        return subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True,
                              capture_output=True, text=True, timeout=120).stdout.split()

    css = publication / ".newsletter" / "cache" / "css"
    first = run()  # images processed, style blocks and style attributes parsed
    assert first[0] == "PIL,cssselect,cssutils"
    assert list(css.glob("sheet-*.json")) and list(css.glob("declarations-*.json"))
    second = run()  # a new process: images and parsed CSS from the disk caches
    assert second == ["-", first[1]]
    for stored in css.glob("*.json"):
        stored.write_text("{not json")
    assert run() == ["cssselect,cssutils", first[1]]  # unreadable entries: parsed again
    assert run() == ["-", first[1]]  # and written again


PAGE = ('<html><head><style>p {{ color:{rule} }}</style></head>'
        '<body><p style="{own}">x</p></body></html>')


def test_cached_css_is_read_back_and_never_stale(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries are keyed by the CSS text and the deriving code: after an edit or an upgrade of
    the parser the old entry is not used; a well-formed file of the wrong shape is ignored."""
    folder = tmp_path / "css"

    def page(rule: str, own: str = "margin:0") -> str:
        css.forget()  # what a new process sees: the folder only
        doc = parse_page(PAGE.format(rule=rule, own=own))
        inline_tree(doc, folder)
        [p] = doc.iter("p")
        return p.get("style")

    assert page("red") == "color:red; margin:0"
    [sheet] = folder.glob("sheet-*.json")
    [declarations] = folder.glob("declarations-*.json")
    sheet.write_text(sheet.read_text().replace('"red"', '"#123456"'))
    declarations.write_text(declarations.read_text().replace('"0"', '"7px"'))
    assert page("red") == "color:#123456; margin:7px"  # read back, not parsed again
    assert page("blue") == "color:blue; margin:7px"  # an edited rule: another entry
    assert page("red", "margin:1px") == "color:#123456; margin:1px"  # an edited attribute
    monkeypatch.setattr(css, "FORMAT", css.FORMAT + 1)  # as an upgrade of the parser would
    css.fingerprint.cache_clear()
    try:
        assert page("red") == "color:red; margin:0"
        for path in folder.glob("*.json"):
            path.write_text('{"rules": [[1, 2]], "leftover": 5}')
        assert page("red") == "color:red; margin:0"
    finally:
        monkeypatch.undo()
        css.fingerprint.cache_clear()
        css.forget()


@pytest.mark.slow
def test_two_processes_filling_the_caches_at_once(publication: Path) -> None:
    """Two builds at once with nothing cached, three times: both write the same pages and
    leave only whole entries behind (parsed CSS, validated sources, Markdown and dates)."""
    script = (
        "import sys; from pathlib import Path\n"
        "from newsletter.compose import build_issue\n"
        "from newsletter.compose.publication import Publication\n"
        f"build = build_issue(Publication.load(Path({str(publication)!r})), {SAMPLE!r})\n"
        "sys.stdout.write(build.html + build.web_html)\n"
    )
    folder = publication / ".newsletter" / "cache"
    for _ in range(3):
        shutil.rmtree(folder, ignore_errors=True)
        runs = [subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, text=True,
                                 stdout=subprocess.PIPE) for _ in range(2)]
        try:
            pages = [run.communicate(timeout=120)[0] for run in runs]
        finally:
            for run in runs:
                if run.poll() is None:
                    run.kill()
                    run.wait()
        assert [run.returncode for run in runs] == [0, 0] and pages[0] == pages[1]
        kept = {name: list((folder / name).iterdir()) for name in ("css", "texts", "valid")}
        assert all(kept.values()) and not [p for ps in kept.values() for p in ps
                                            if p.name.startswith(".tmp-")]
        for path in kept["css"] + kept["texts"]:
            json.loads(path.read_text())
        for path in kept["valid"]:
            pickle.loads(path.read_bytes())


def test_broken_css_is_dropped_quietly_by_the_command_only(publication: Path) -> None:
    """A declaration cssutils cannot parse is left out; `newsletter build` keeps cssutils'
    complaint off stderr (set up at the process's start), while a program that imports the
    build keeps cssutils' logging as the library set it up."""
    replace_in(publication / "templates" / "default" / "email.mjml.j2", "<mj-style>",
               "<mj-style>h2 { color: ; letter-spacing: 1px }")
    command = subprocess.run(
        [sys.executable, "-m", "newsletter", "-C", str(publication), "build", SAMPLE],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert command.returncode == 0, command.stderr
    assert "letter-spacing:1px" in (publication / "dist" / SAMPLE / "email.html").read_text()
    assert "Syntax Error" not in command.stderr
    shutil.rmtree(publication / ".newsletter" / "cache" / "css")  # parsed again, not read back
    library = subprocess.run(
        [sys.executable, "-c", "from pathlib import Path\n"
         "from newsletter.compose import build_issue\n"
         "from newsletter.compose.publication import Publication\n"
         f"build_issue(Publication.load(Path({str(publication)!r})), {SAMPLE!r})\n"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=120)
    assert "Syntax Error in Property: color:" in library.stderr


def test_a_rebuild_sees_an_edited_translation(publication: Path) -> None:
    """Edition groups come from every issue's manifest, kept per process: an edit to another
    issue's manifest (here one of the same size) still shows in the next build."""
    pub = Publication.load(publication)
    assert "2026-11-24-ar/" in build_issue(pub, SAMPLE).web_html
    replace_in(publication / "issues" / "2026-11-24-ar" / "issue.yaml",
               "translation_of: 2026-11-24", "translation_of: 2026-11-17")
    assert "2026-11-24-ar/" not in build_issue(pub, SAMPLE).web_html
