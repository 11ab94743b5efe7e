"""The web archive: one page per issue, an index newest first, an Atom feed, relative links."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import html as lxml_html

from newsletter.cli import main
from newsletter.compose.publication import Publication
from newsletter.core.errors import InputError
from newsletter.web.archive import build_archive, relative_links
from tests.web.conftest import SLUG

ATOM = "{http://www.w3.org/2005/Atom}"
OLDER = "2026-11-17"
ARABIC = f"{SLUG}-ar"


def add_older_issue(root: Path) -> Path:
    """A second issue, a week older, with its own subject and two pieces."""
    folder = root / "issues" / OLDER
    shutil.copytree(root / "issues" / SLUG, folder)
    manifest = (folder / "issue.yaml").read_text()
    manifest = manifest.replace("date: 2026-11-24", f"date: {OLDER}")
    manifest = manifest.replace(
        'subject: "Grid queues, ransomware, Egypt\'s squeeze & the tariff trap"',
        'subject: "Last week: <pipelines> & ports"',
    )
    manifest = manifest.replace("  - pieces/energy.md\n", "").replace("  - pieces/trade.md\n", "")
    (folder / "issue.yaml").write_text(manifest)
    return folder


def test_archive_pages_index_and_feed(publication: Path) -> None:
    add_older_issue(publication)
    result = build_archive(Publication.load(publication))
    out = publication / "dist" / "archive"
    assert result.folder == out
    assert [e.slug for e in result.by_language["en"]] == [SLUG, OLDER]
    assert [e.slug for e in result.by_language["ar"]] == [ARABIC]

    index = (out / "index.html").read_text()
    newer, older = index.index(f'href="{SLUG}/"'), index.index(f'href="{OLDER}/"')
    assert newer < older  # newest first
    assert "Last week: &lt;pipelines&gt; &amp; ports" in index
    assert "24 November 2026" in index and "17 November 2026" in index
    assert "With Elena Marsh, Tomás Reyes, Samira Haddad, David Okafor" in index
    assert "With Tomás Reyes, Samira Haddad</p>" in index
    assert 'href="feed.xml"' in index

    for slug in (SLUG, OLDER):
        page = (out / slug / "index.html").read_text()
        [hero] = (out / slug).glob("hero-*.jpg")  # processed, named by its content hash
        assert f'src="{hero.name}"' in page
        doc = lxml_html.document_fromstring(page)
        links = doc.xpath("//*[not(self::link[@rel='canonical'])]/@href | //@src")
        assert not [url for url in links if url.startswith("https://news.example.org/archive/")]
        # only the canonical link and the sharing tags keep absolute URLs
        assert doc.xpath("//link[@rel='canonical']/@href") == [
            f"https://news.example.org/archive/{slug}/"]
        assert f'<meta property="og:url" content="https://news.example.org/archive/{slug}/">' \
            in page
        assert 'href="../"' in page and 'href="../feed.xml"' in page
        assert "%%" not in page

    feed = ET.parse(out / "feed.xml").getroot()
    assert feed.tag == f"{ATOM}feed"
    assert feed.findtext(f"{ATOM}updated") == "2026-11-24T12:00:00Z"
    entries = feed.findall(f"{ATOM}entry")
    ids = [e.findtext(f"{ATOM}id") for e in entries]
    assert ids == [
        f"https://news.example.org/archive/{SLUG}/",
        f"https://news.example.org/archive/{OLDER}/",
    ]
    assert entries[1].findtext(f"{ATOM}title") == "Last week: <pipelines> & ports"
    link = entries[0].find(f"{ATOM}link").get("href")
    assert link == f"https://news.example.org/archive/{SLUG}/"
    authors = [a.findtext(f"{ATOM}name") for a in entries[0].findall(f"{ATOM}author")]
    assert authors == ["Elena Marsh", "Tomás Reyes", "Samira Haddad", "David Okafor"]

    first_feed = (out / "feed.xml").read_bytes()
    build_archive(Publication.load(publication))
    assert (out / "feed.xml").read_bytes() == first_feed  # stable ids and dates


def test_each_language_has_its_index_and_feed(publication: Path) -> None:
    result = build_archive(Publication.load(publication))
    out = result.folder
    index = (out / "ar" / "index.html").read_text()
    assert '<html lang="ar" dir="rtl">' in index
    assert f'href="../{ARABIC}/"' in index and f'href="../{SLUG}/"' not in index
    assert "كل الأعداد، الأحدث أولًا" in index and "Every issue" not in index
    assert 'hreflang="en"' in index  # the way to the English index
    assert 'hreflang="ar"' in (out / "index.html").read_text()
    feed = ET.parse(out / "ar" / "feed.xml").getroot()
    assert feed.get("{http://www.w3.org/XML/1998/namespace}lang") == "ar"
    assert [e.findtext(f"{ATOM}id") for e in feed.findall(f"{ATOM}entry")] == [
        f"https://news.example.org/archive/{ARABIC}/"]
    english = ET.parse(out / "feed.xml").getroot()
    assert ARABIC not in "".join(e.findtext(f"{ATOM}id") for e in english.iter(f"{ATOM}entry"))
    page = (out / ARABIC / "index.html").read_text()
    assert 'href="../ar/feed.xml"' in page and "كل الأعداد" in page
    # the editions link each other: hreflang alternates and "read in" links
    assert f'hreflang="en" href="../{SLUG}/"' in page
    assert "Read in English" in page
    english_page = (out / SLUG / "index.html").read_text()
    assert f'hreflang="ar" href="../{ARABIC}/"' in english_page
    assert "اقرأ بالعربية" in english_page


def test_a_broken_issue_fails_and_leaves_the_archive_alone(publication: Path) -> None:
    pub = Publication.load(publication)
    build_archive(pub)
    index = (publication / "dist" / "archive" / "index.html").read_bytes()
    broken = add_older_issue(publication)
    (broken / "issue.yaml").write_text("subject: x\ndate: 2026-11-17\npieces: [pieces/gone.md]\n")
    with pytest.raises(InputError) as caught:
        build_archive(pub)
    assert any("gone.md" in p.message for p in caught.value.problems)
    assert (publication / "dist" / "archive" / "index.html").read_bytes() == index
    assert not (publication / "dist" / "archive" / OLDER).exists()

    skipped = build_archive(pub, skip=(OLDER,))
    assert [e.slug for e in skipped.by_language["en"]] == [SLUG]


def test_relative_links() -> None:
    base = "https://x.org/archive/"
    html = (
        f'<a href="{base}a/">self</a><img src="{base}a/hero.jpg">'
        f'<a href="{base}b/">other</a><a href="{base}">home</a><a href="https://y.org/">out</a>'
    )
    assert relative_links(html, base, "a") == (
        '<a href="./">self</a><img src="hero.jpg">'
        '<a href="../b/">other</a><a href="../">home</a><a href="https://y.org/">out</a>'
    )


def test_cli_archive(publication: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    result = CliRunner().invoke(main, ["-C", str(publication), "archive", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "archived 2 issues" in result.output  # the sample issue and its Arabic edition
    assert (out / SLUG / "index.html").is_file() and (out / "feed.xml").is_file()
    bad = CliRunner().invoke(main, ["-C", str(publication), "archive", "--skip", "nope"])
    assert bad.exit_code == 2 and "no issue to skip: nope" in bad.output


def _head(page: Path) -> dict[str, object]:
    """The sharing metadata of a page's <head>, parsed with lxml."""
    import lxml.html

    doc = lxml.html.parse(str(page)).getroot()
    head = doc.find("head")
    return {
        "title": head.findtext("title"),
        "description": head.xpath('string(meta[@name="description"]/@content)'),
        "canonical": head.xpath('link[@rel="canonical"]/@href'),
        "og": {m.get("property"): m.get("content") for m in head.xpath("meta[@property]")},
        "card": head.xpath('string(meta[@name="twitter:card"]/@content)'),
        "hreflang": {link.get("hreflang"): link.get("href")
                     for link in head.xpath("link[@rel='alternate'][@hreflang]")},
    }


def test_archive_indexes_carry_title_description_canonical_and_open_graph(
        publication: Path) -> None:
    from PIL import Image

    add_older_issue(publication)
    pub = Publication.load(publication)
    out = build_archive(pub).folder
    base = pub.config.archive_url
    indexes = {"en": (out / "index.html", base), "ar": (out / "ar" / "index.html", base + "ar/")}
    subjects = {"en": "Grid queues, ransomware, Egypt's squeeze & the tariff trap",
                "ar": "طوابير الشبكات، وبرامج الفدية، وضائقة مصر، وفخ الرسوم الجمركية"}
    newest = {"en": SLUG, "ar": ARABIC}
    for lang, (page, url) in indexes.items():
        head = _head(page)
        og = head["og"]
        assert head["canonical"] == [url] and og["og:url"] == url  # absolute, one each
        assert head["title"] == og["og:title"] and head["title"].startswith(pub.config.name)
        assert subjects[lang] in head["description"] and len(head["description"]) <= 200
        assert og["og:description"] == head["description"] and og["og:type"] == "website"
        assert og["og:site_name"] == pub.config.name
        assert head["hreflang"] == {"en": base, "ar": base + "ar/", "x-default": base}
        # the image is the newest issue's hero, at the address the archive publishes it at
        assert og["og:image"].startswith(f"{base}{newest[lang]}/hero-")
        published = out / og["og:image"].removeprefix(base)
        with Image.open(published) as image:
            assert (og["og:image:width"], og["og:image:height"]) == tuple(map(str, image.size))
        assert og["og:image:alt"] and head["card"] == "summary_large_image"


def test_relink_keeps_a_canonical_address_absolute() -> None:
    from lxml import html as lxml_html

    from newsletter.web.archive import relink

    base = "https://x.org/archive/"
    doc = lxml_html.document_fromstring(
        f'<html><head><link rel="canonical" href="{base}a/"><link rel="alternate" hreflang="ar" '
        f'href="{base}a-ar/"></head><body><a href="{base}a/">self</a></body></html>')
    relink(doc, base, "a")
    assert doc.xpath("//link[@rel='canonical']/@href") == [f"{base}a/"]
    assert doc.xpath("//link[@rel='alternate']/@href") == ["../a-ar/"]
    assert doc.xpath("//a/@href") == ["./"]
