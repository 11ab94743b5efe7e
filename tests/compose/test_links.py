"""Links know their piece: the build ties every link to its piece or to the chrome, lists them
in report.json, and (with click tracking on) prepares tracked HTML with one placeholder each."""

from __future__ import annotations

import json
from pathlib import Path

import lxml.html

from newsletter.compose import build_issue, write_build
from newsletter.compose.links import piece_marker, tag_links
from newsletter.compose.publication import Publication

SLUG = "2026-11-24"


def _piece_files(root: Path) -> list[Path]:
    return [root / "issues" / SLUG / "pieces" / f"{name}.md"
            for name in ("energy", "cyber", "egypt", "trade")]


def test_every_link_is_tied_to_its_piece_or_the_chrome(publication: Path) -> None:
    # give each piece a link of its own we can recognise
    for number, path in enumerate(_piece_files(publication), start=1):
        path.write_text(path.read_text() + f"\n[Read more](https://example.org/p{number}/more)\n")
    pub = Publication.load(publication)
    build = build_issue(pub, SLUG)
    by_url = {}
    for link in build.links:
        by_url.setdefault(link.url, []).append(link)
    for number in range(1, 5):
        (link,) = by_url[f"https://example.org/p{number}/more"]
        assert link.piece == number
    # the expert's Twitter link sits in the piece's own section
    assert {link.piece for link in by_url["https://twitter.com/tomasreyes"]} == {2}
    # masthead and footer links are the chrome
    view = f"{pub.config.archive_url}{SLUG}/"
    assert [link.piece for link in by_url[view]] == [0, 0]
    assert [link.piece for link in by_url["%%unsubscribe_url%%"]] == [0]
    assert by_url["%%unsubscribe_url%%"][0].trackable is False
    # positions follow the document; indexes count within each piece
    assert [link.position for link in build.links] == list(range(1, len(build.links) + 1))
    anchors = [a.get("href") for a in lxml.html.document_fromstring(build.html).iter("a")]
    assert [link.url for link in build.links] == anchors
    for piece in {link.piece for link in build.links}:
        indexes = [link.index for link in build.links if link.piece == piece]
        assert indexes == list(range(1, len(indexes) + 1))

    target = write_build(pub, build)
    report = json.loads((target / "report.json").read_text())
    first = next(n for n, link in enumerate(build.links) if link.piece == 1)
    assert report["links"][first] == {**build.links[first].as_dict()}
    assert report["links"][first]["label"] == "piece 1, link 1"
    assert build.tracked_html is None  # tracking is off in the sample


def test_tracked_html_replaces_each_trackable_link_with_its_placeholder(
        publication: Path) -> None:
    config = publication / "newsletter.yaml"
    config.write_text(config.read_text() + "tracking: {clicks: true}\n")
    build = build_issue(Publication.load(publication), SLUG)
    hrefs = [a.get("href") for a in lxml.html.document_fromstring(build.tracked_html).iter("a")]
    assert hrefs == [f"%%link|{link.position}%%" if link.trackable else link.url
                     for link in build.links]


def test_a_single_piece_issue_still_tells_piece_from_chrome() -> None:
    section = '<div class="section">{}</div>'
    html = ("<html><body><div class='preview'>hidden</div><div class='wrapper'>"
            + section.format('<a href="https://x.example/view">View</a>')
            + section.format("<h2>Title</h2>" + piece_marker(1, '<p><a href="https://x.example/a">'
                                                                 "a</a></p>")
                             + '<p><a href="https://x.example/follow">follow</a></p>')
            + section.format('<a href="%%unsubscribe_url%%">Unsubscribe</a>')
            + "</div></body></html>")
    assert [(link.url.rsplit("/", 1)[-1], link.piece, link.index) for link in tag_links(html)] \
        == [("view", 0, 1), ("a", 1, 1), ("follow", 1, 2), ("%%unsubscribe_url%%", 0, 2)]
