"""`newsletter new SLUG --from-feed URL`: a draft from the institute's own website (a local copy
served over HTTPS), checked the way an editor would: fill in the subject, run `check --strict`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from tests.compose.draft_helpers import (
    NAVIGATION,
    SLUG,
    article_paragraphs,
    check,
    draft,
    manifest,
    opening_of,
    piece,
    subject_only,
)
from tests.compose.draft_site import Site
from tests.conftest import need

ENGLISH = {  # piece -> (page of the test site, expert, where the text comes from)
    "pieces/grid-queues.md": ("commentary/grid-queues.html", "elena-marsh", "the page"),
    "pieces/water-utilities.md": ("commentary/water-utilities.html", "tomas-reyes", "the page"),
    "pieces/egypt-currency.md": ("commentary/egypt-currency.html", "samira-haddad",
                                 "the feed's content"),
    "pieces/tariff-trap.md": ("commentary/tariff-trap.html", "david-okafor", "the page"),
}


@pytest.mark.slow
def test_a_four_piece_draft_passes_check_strict_once_the_subject_is_written(
        fresh_site: Site, publication: Path) -> None:
    result = draft(publication, fresh_site, "feed.xml")
    assert result.exit_code == 0, result.output
    assert "4 pieces" in result.stdout and "(the last 7 days)" in result.stdout
    data = manifest(publication)
    assert data["pieces"] == list(ENGLISH)  # newest first; the 10-day-old entry is left out
    assert data["subject"].startswith("TK")  # the one thing left for the editor
    assert data["preheader"] == "With Elena Marsh, Tomás Reyes, Samira Haddad, David Okafor"
    assert "language" not in data  # the feed's en-us is the publication's language
    for name, (page, expert, source) in ENGLISH.items():
        front, body = piece(publication, name)
        assert front["expert"] == expert  # "tomas reyes" in the feed: accents and case ignored
        assert f"{name}  " in result.stdout and f"text from {source}" in result.stdout
        # The text is the article's opening: its first paragraphs within 150 words, nothing of
        # the navigation, share buttons, sign-up box or footer around it.
        assert body[:-1] == opening_of(article_paragraphs(page), 150), name
        assert not [word for word in NAVIGATION if word in "\n".join(body)], name
        assert body[-1] == f"[Read the full commentary]({fresh_site.url(page)})"  # no utm_
    assert data["hero"] == {
        "image": "hero.jpg",
        "alt": "Rows of electricity pylons crossing a valley at dusk, with a half-built solar "
               "farm in the foreground",
        "credit": "Photo: Mara Ellison / Example Institute"}
    hero = publication / "issues" / SLUG / "hero.jpg"
    assert hero.read_bytes() == fresh_site.images["/images/grid-queues.jpg"]
    with Image.open(hero) as image:
        assert image.size == (1200, 630)

    untouched = check(publication, SLUG, "--no-spam")
    assert untouched.exit_code == 1 and "leftover placeholder TK" in untouched.output
    subject_only(publication, "Grid queues, water plants, Egypt's squeeze and the tariff trap")
    need("SpamAssassin", shutil.which("spamassassin") is not None)
    checked = check(publication)  # the whole gate, SpamAssassin too
    assert checked.exit_code == 0, checked.output
    assert "ok: 0 errors, 0 warnings" in checked.output and "SpamAssassin" in checked.output


def test_each_page_is_requested_once_politely(fresh_site: Site, publication: Path) -> None:
    result = draft(publication, fresh_site, "feed.xml", "--since", "2000-01-01")
    assert result.exit_code == 0, result.output
    paths = fresh_site.paths()
    assert sorted(paths) == sorted(set(paths))  # nothing twice
    assert paths[0] == "/robots.txt"  # asked before anything else on the site
    # The feed carries the whole Egypt commentary: its page is not needed. Since 2000: the
    # old entry is drafted too.
    assert "/commentary/egypt-currency.html" not in paths
    assert "/commentary/old-piece.html" in paths and len(manifest(publication)["pieces"]) == 5
    agents = {agent for _, agent in fresh_site.requests}
    assert len(agents) == 1 and agents.pop().startswith("newsletter-drafter/")


def test_an_atom_feed_and_a_shouted_author_name(fresh_site: Site, publication: Path) -> None:
    result = draft(publication, fresh_site, "atom.xml")
    assert result.exit_code == 0, result.output
    assert manifest(publication)["pieces"] == ["pieces/courts-and-ai.md",
                                               "pieces/gulf-investment.md"]
    front, body = piece(publication, "pieces/gulf-investment.md")
    assert front["expert"] == "karim-mansour"  # KARIM MANSOUR in the feed
    assert body[:-1] == opening_of(article_paragraphs("commentary/gulf-investment.html"), 150)
    front, _ = piece(publication, "pieces/courts-and-ai.md")
    assert front == {"title": "Courts are not ready for evidence made by machines",
                     "expert": "marcus-lindqvist"}


def test_pick_words_and_since(fresh_site: Site, publication: Path) -> None:
    result = draft(publication, fresh_site, "feed.xml", "--pick", "2", "--words", "60",
                   "--since", "2000-01-01T00:00")
    assert result.exit_code == 0, result.output
    assert manifest(publication)["pieces"] == ["pieces/grid-queues.md",
                                               "pieces/water-utilities.md"]
    for name in manifest(publication)["pieces"]:
        _, body = piece(publication, name)
        page = ENGLISH[name][0]
        assert body[:-1] == opening_of(article_paragraphs(page), 60)
        assert 0 < sum(len(p.split()) for p in body[:-1]) <= 60


def test_the_feed_settings_in_newsletter_yaml_are_the_defaults(
        fresh_site: Site, publication: Path) -> None:
    config = publication / "newsletter.yaml"
    config.write_text(config.read_text(encoding="utf-8") + (
        f"feed: {{url: '{fresh_site.url('atom.xml')}', words: 40, days: 30,\n"
        "       link_text: Continue on our website}\n"), encoding="utf-8")
    result = draft(publication, fresh_site, None)
    assert result.exit_code == 0, result.output
    assert "(the last 30 days)" in result.stdout
    pieces = manifest(publication)["pieces"]
    assert len(pieces) == 3  # 30 days back: the 12-day-old entry too
    _, body = piece(publication, pieces[0])
    assert sum(len(p.split()) for p in body[:-1]) <= 40
    assert body[-1].startswith("[Continue on our website](https://")


def test_the_arabic_feed_keeps_right_to_left_text_intact(
        fresh_site: Site, publication: Path) -> None:
    result = draft(publication, fresh_site, "ar/feed.xml")
    assert result.exit_code == 0, result.output
    data = manifest(publication)
    assert data["language"] == "ar"  # from the feed's <language>
    assert data["preheader"] == "بمشاركة سميرة حداد، Elena Marsh، David Okafor"
    assert data["hero"]["alt"].startswith("جسر فوق النيل")
    assert data["hero"]["credit"] == "تصوير: Mara Ellison لمعهد Example"
    pages = {"pieces/egypt-breathing-room.md": ("ar/commentary/egypt-breathing-room.html",
                                                "samira-haddad"),  # سميرة حدّاد: the shadda
             "pieces/gulf-grids.md": ("ar/commentary/gulf-grids.html", "elena-marsh"),
             "pieces/trade-corridors.md": ("ar/commentary/trade-corridors.html", "david-okafor")}
    assert data["pieces"] == list(pages)
    for name, (page, expert) in pages.items():
        front, body = piece(publication, name)
        assert front["expert"] == expert and "lang" not in front
        # Character for character what the page has (the pages are served without a charset
        # in Content-Type: their <meta charset> says UTF-8), marks and digits included.
        assert body[:-1] == opening_of(article_paragraphs(page), 150)
        assert body[-1].startswith("[اقرأ التعليق كاملًا](https://")
        assert not [word for word in NAVIGATION if word in "\n".join(body)]
    subject_only(publication, "مصر والخليج وممرات التجارة: ثلاث قراءات لهذا الأسبوع")
    checked = check(publication, SLUG, "--no-spam")
    assert checked.exit_code == 0, checked.output


def test_language_from_the_option_when_the_feed_says_none(
        fresh_site: Site, publication: Path) -> None:
    result = draft(publication, fresh_site, "ar/nolang.xml", "--language", "ar")
    assert result.exit_code == 0, result.output
    assert manifest(publication)["language"] == "ar"
    _, body = piece(publication, "pieces/gulf-grids.md")
    assert body[-1].startswith("[اقرأ التعليق كاملًا]")
    # without it, the issue is in the publication's language and each piece says its own
    result = draft(publication, fresh_site, "ar/nolang.xml", slug="2026-12-02")
    assert result.exit_code == 0, result.output
    assert "language" not in manifest(publication, "2026-12-02")
    front, _ = piece(publication, "pieces/gulf-grids.md", "2026-12-02")
    assert front["lang"] == "ar"


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "last tuesday"], "is not a date"),
    (["--pick", "0"], "--pick"),
    (["--language", "Arabic!"], "is not a language tag such as en, ar or pt-BR"),
])
def test_bad_options_exit_2(fresh_site: Site, publication: Path, args: list[str],
                            message: str) -> None:
    result = draft(publication, fresh_site, "feed.xml", *args)
    assert result.exit_code == 2 and message in result.output
    assert not (publication / "issues" / SLUG).exists() and fresh_site.paths() == []


def test_feed_options_need_from_feed_and_bad_feed_settings_name_their_line(
        publication: Path) -> None:
    from tests.compose.helpers import line_of, run

    result = run(publication, "new", SLUG, "--force")
    assert result.exit_code == 2 and "--force goes with --from-feed" in result.output
    config = publication / "newsletter.yaml"
    config.write_text(config.read_text(encoding="utf-8") + "feed:\n  url: ftp://example.org/feed\n"
                      "  words: 5\n", encoding="utf-8")
    result = run(publication, "new", SLUG, "--from-feed")
    assert result.exit_code == 2
    assert f"newsletter.yaml:{line_of(config, 'ftp://')}: error: 'feed.url'" in result.stderr
    assert f"newsletter.yaml:{line_of(config, 'words: 5')}: error: 'feed.words'" in result.stderr
    assert not (publication / "issues" / SLUG).exists()
