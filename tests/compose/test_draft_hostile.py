"""`new --from-feed` against a site that misbehaves: no author, an unknown author, a page that
never answers, a 404, robots.txt, oversized pages, links that are not web pages, markup in the
text, a feed with external entities; and feeds that cannot be drafted at all."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from lxml import html as lxml_html

from newsletter.compose import markdown
from tests.compose.draft_helpers import SLUG, check, draft, manifest, piece
from tests.compose.draft_site import Site


@pytest.fixture(scope="module")
def hostile(site: Site, tmp_path_factory: pytest.TempPathFactory):
    """One draft of hostile.xml (a 0.3 s timeout), shared by the tests below."""
    from tests.conftest import copy_sample

    root = copy_sample(tmp_path_factory.mktemp("hostile") / "pub")
    site.clear()
    started = time.monotonic()
    result = draft(root, site, "hostile.xml", "--timeout", "0.3", "--since", "2000-01-01")
    return root, result, site.paths(), time.monotonic() - started


def warnings_for(result, needle: str) -> list[str]:
    return [line for line in result.stderr.splitlines() if needle in line and "warning" in line]


def test_the_draft_goes_on_around_every_bad_entry(hostile) -> None:
    root, result, paths, seconds = hostile
    assert result.exit_code == 0, result.output
    assert manifest(root)["pieces"] == [
        "pieces/no-byline.md", "pieces/guest-column.md", "pieces/lost-in-transit.md",
        "pieces/embargoed.md", "pieces/endless.md", "pieces/enormous.md", "pieces/markup.md"]
    assert seconds < 10  # the page that never answers cost one short timeout


def test_an_article_without_author_is_never_given_one(hostile) -> None:
    root, result, _, _ = hostile
    front, _ = piece(root, "pieces/no-byline.md")
    assert front["expert"] == "TK"
    [line] = warnings_for(result, "no-byline.md")
    assert "name no author" in line
    # the build stops on it: nobody sends a piece with a made-up byline
    checked = check(root, SLUG, "--no-spam")
    assert checked.exit_code == 2 and "unknown expert 'TK'" in checked.output


def test_an_unknown_author_is_listed_with_the_closest_experts(hostile) -> None:
    root, result, _, _ = hostile
    front, _ = piece(root, "pieces/guest-column.md")
    assert front["expert"] == "helena-ostrander"  # not an id of the registry
    text = (root / "issues" / SLUG / "pieces" / "guest-column.md").read_text(encoding="utf-8")
    assert "closest experts: helen-ostrander" in text
    [line] = warnings_for(result, "guest-column.md")
    assert "'Helena Ostrander' is not in the experts registry (closest: helen-ostrander)" in line
    assert "guest-column.md:3:" in line  # the line of expert:


@pytest.mark.parametrize(("path", "name", "reason"), [
    ("/slow/lost-in-transit.html", "lost-in-transit", "no answer within 0.3 s"),
    ("/private/embargoed.html", "embargoed", "robots.txt disallows it"),
    ("/huge/endless.html", "endless", "cut off past the 5.0 MB limit"),
    ("/huge-declared/enormous.html", "enormous", "it is 50.0 MB, over the 5.0 MB limit"),
])
def test_a_page_not_read_leaves_the_feeds_summary(hostile, path, name, reason) -> None:
    root, result, paths, _ = hostile
    [line] = warnings_for(result, path)
    assert reason in line and "starts with the feed's summary" in line
    _, body = piece(root, f"pieces/{name}.md")
    assert len(body) == 2 and body[1].startswith("[Read the full commentary](https://")
    if name == "lost-in-transit":  # the summary's HTML is reduced to its text
        assert body[0] == "Storage, not generation, is the next constraint on the grid."
    assert paths.count(path) == (0 if name == "embargoed" else 1)


def test_a_404_and_links_that_are_not_web_pages_are_left_out(hostile) -> None:
    root, result, paths, _ = hostile
    assert "the server answered 404; left out" in warnings_for(result, "/missing/")[0]
    for link in ("javascript:alert(document.cookie)", "file://"):
        [line] = warnings_for(result, link)
        assert "not an http(s) URL; left out" in line
    assert not [p for p in paths if "passwd" in p or "alert" in p]
    assert len(paths) == len(set(paths)) and paths[0] == "/robots.txt"


def test_a_hero_without_alt_text_is_marked_for_the_editor(hostile) -> None:
    root, result, _, _ = hostile
    hero = manifest(root)["hero"]
    assert hero["image"] == "hero.jpg" and hero["alt"].startswith("TK")
    assert "credit" not in hero
    assert warnings_for(result, "no alt text")


def test_a_picture_that_is_not_one_is_not_the_hero(fresh_site: Site, publication: Path) -> None:
    result = draft(publication, fresh_site, "bad-picture.xml", "--since", "2000-01-01")
    assert result.exit_code == 0, result.output
    assert "hero" not in manifest(publication)
    assert sorted(p.name for p in (publication / "issues" / SLUG).iterdir()) == [
        "issue.yaml", "pieces"]
    [line] = warnings_for(result, "not-an-image.jpg")  # a relative og:image, resolved
    assert "was not used as the hero: not an image that can be read" in line
    assert fresh_site.count("/images/not-an-image.jpg") == 1


def test_markup_in_the_article_stays_text(hostile) -> None:
    root, _, _, _ = hostile
    source = (root / "issues" / SLUG / "pieces" / "markup.md").read_text(encoding="utf-8")
    body = source.split("---\n", 2)[2]
    html = markdown.to_html(body)
    tree = lxml_html.fragment_fromstring(html, create_parent="div")
    tags = {element.tag for element in tree.iter()} - {"div"}
    assert tags == {"p", "a"}  # paragraphs, and the one link the drafter adds
    [link] = tree.iter("a")
    assert link.text == "Read the full commentary"
    text = tree.text_content().replace("\u200b", "")
    for literal in ("# This line starts with a hash", "*asterisks*", "__underscores__",
                    "`backticks`", "[a bracketed aside](javascript:alert(1))",
                    "<script>alert(", "</script> pasted", "1. This sentence", "~~struck~~",
                    "&copy;", "stray \\ backslash", "<https://example.org/autolink>"):
        assert literal in text, literal
    # a %%placeholder%% in the article is not one the send step would fill
    assert not re.search(r"%%\w+%%", html) and "%\u200b%email%\u200b%" in html


def test_a_feed_with_external_entities_reads_no_file(fresh_site: Site, publication: Path) -> None:
    result = draft(publication, fresh_site, "xxe.xml", "--since", "2000-01-01")
    assert result.exit_code == 0, result.output
    written = "\n".join(p.read_text(encoding="utf-8")
                        for p in (publication / "issues" / SLUG).rglob("*.*")
                        if p.suffix in (".md", ".yaml"))
    assert "root:" not in written and "/bin/" not in written


@pytest.mark.parametrize(("feed", "message", "asked"), [
    ("missing/feed.xml", "the feed could not be read: the server answered 404",
     ["/robots.txt", "/missing/feed.xml"]),
    ("commentary/grid-queues.html", "this is not an RSS or Atom feed",
     ["/robots.txt", "/commentary/grid-queues.html"]),
    ("private/feed.xml", "robots.txt disallows it", ["/robots.txt"]),
])
def test_a_feed_that_cannot_be_read_exits_2_writing_nothing(
        fresh_site: Site, publication: Path, feed: str, message: str, asked: list[str]) -> None:
    result = draft(publication, fresh_site, feed, "--since", "2000-01-01")
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert fresh_site.paths() == asked
    assert not (publication / "issues" / SLUG).exists()


def test_a_feed_url_that_is_not_a_web_address_is_not_opened(
        fresh_site: Site, publication: Path) -> None:
    from click.testing import CliRunner

    from newsletter.cli import main

    result = CliRunner().invoke(main, ["-C", str(publication), "new", SLUG, "--from-feed",
                                       "file:///etc/passwd", "--since", "2000-01-01"])
    assert result.exit_code == 2 and "not an http(s) URL" in result.stderr
    assert "root:" not in result.output


def test_no_entry_since_the_date_exits_1_writing_nothing(
        fresh_site: Site, publication: Path) -> None:
    result = draft(publication, fresh_site, "feed.xml", "--since", "2099-01-01")
    assert result.exit_code == 1 and "no entry to draft since 2099-01-01" in result.stderr
    assert not (publication / "issues" / SLUG).exists()
