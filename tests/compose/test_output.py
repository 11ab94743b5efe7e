"""What the built email contains: pieces, bylines, links, footer, text part, sample message."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

import pytest
from lxml import html as lxml_html

from newsletter.compose import Build, build_issue, markdown
from newsletter.compose.publication import Publication
from tests.compose.helpers import SAMPLE, issue_dir, replace_in


@pytest.fixture()
def pub(publication: Path) -> Publication:
    return Publication.load(publication)


@pytest.fixture()
def built(pub: Publication) -> Build:
    return build_issue(pub, SAMPLE)


def _doc(html: str):
    return lxml_html.fromstring(html)


def _normal(text: str) -> str:
    return " ".join(text.split())


def test_each_piece_has_headline_byline_body_and_follow_link(pub: Publication, built: Build):
    doc = _doc(built.html)
    headlines = [_normal(h.text_content()) for h in doc.xpath("//h2")]
    assert headlines == [p.meta.title for p in built.issue.pieces]
    bylines = [_normal(p.text_content()) for p in doc.xpath("//p[contains(@class,'byline')]")]
    for piece, byline in zip(built.issue.pieces, bylines, strict=True):
        assert byline == f"By {piece.expert.name}, {piece.expert.role}"
    follows = doc.xpath("//p[contains(@class,'follow')]/a")
    handles = [p.expert.twitter for p in built.issue.pieces if p.expert.twitter]
    assert [a.text_content() for a in follows] == [f"@{h}" for h in handles]
    assert [a.get("href") for a in follows] == [f"https://twitter.com/{h}" for h in handles]
    assert len(handles) < len(built.issue.pieces), "sample needs an expert without Twitter"


def test_no_follow_line_for_expert_without_twitter(built: Build):
    doc = _doc(built.html)
    for piece in built.issue.pieces:
        if piece.expert.twitter:
            continue
        section = doc.xpath(f"//h2[normalize-space()={piece.meta.title!r}]/..")[0]
        assert "Follow on Twitter" not in section.text_content()


def test_hero_image_alt_credit_and_local_copy(pub: Publication, built: Build):
    doc = _doc(built.html)
    hero = built.issue.manifest.hero
    images = doc.xpath("//img")
    assert images[0].get("alt") == hero.alt
    processed = built.images.get(issue_dir(pub.root) / hero.image)
    assert images[0].get("src") == f"{pub.config.archive_url}{SAMPLE}/{processed.name}"
    assert (images[0].get("width"), images[0].get("height")) == ("600", "300")
    assert hero.credit in _normal(doc.text_content())
    assert built.assets[processed.name] == processed.path


def test_every_image_has_alt_and_lang_is_set(built: Build):
    for html in (built.html, built.web_html):
        doc = _doc(html)
        assert doc.get("lang") == "en"
        images = doc.xpath("//img")
        assert images and all((img.get("alt") or "").strip() for img in images)


def test_preheader_footer_links_and_unsubscribe_placeholder(pub: Publication, built: Build):
    doc = _doc(built.html)
    text = _normal(doc.text_content())
    assert built.issue.manifest.preheader in text
    assert pub.config.address in text and pub.config.publisher in text
    assert "nonpartisan research organisation" in text  # the Markdown footer, rendered
    hrefs = [a.get("href") for a in doc.xpath("//a")]
    assert "https://example.org/donors" in hrefs
    assert f"{pub.config.archive_url}{SAMPLE}/" in hrefs
    assert "%%unsubscribe_url%%" in hrefs


def test_web_copy_has_no_personal_placeholders(built: Build):
    assert "%%" not in built.web_html
    assert "Unsubscribe" not in _doc(built.web_html).text_content()
    assert "%%unsubscribe_url%%" in built.text


def test_css_is_inlined_and_size_is_within_budget(built: Build):
    doc = _doc(built.html)
    headline = doc.xpath("//h2")[0]
    assert "font-size:24px" in headline.get("style").replace(" ", "")
    assert len(built.html.encode()) <= 60 * 1024


def test_text_part_contains_every_paragraph_of_every_piece(built: Build):
    text = _normal(built.text.replace("*", ""))
    text = re.sub(r" \[\d+\]", "", text)
    for piece in built.issue.pieces:
        assert piece.meta.title in text
        for paragraph in markdown.paragraphs(piece.body):
            assert paragraph.replace("*", "") in text, paragraph[:60]


def test_text_part_wraps_at_72_and_lists_links(built: Build):
    lines = built.text.splitlines()
    long_lines = [ln for ln in lines if len(ln) > 72 and " " in ln.strip() and "http" not in ln]
    assert long_lines == []
    for piece in built.issue.pieces:
        for url in re.findall(r"\]\((https?://[^)]+)\)", piece.body):
            assert re.search(rf"^\[\d+\] {re.escape(url)}$", built.text, re.M), url
    assert "Follow on Twitter: @" in built.text
    assert "Unsubscribe: %%unsubscribe_url%%" in built.text


def test_sample_message_is_complete_multipart(pub: Publication, built: Build):
    msg = email.message_from_bytes(built.message, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    for header in ("Date", "Message-ID", "From", "To", "Reply-To", "Subject"):
        assert msg[header], header
    assert msg["From"].addresses[0].addr_spec == pub.config.sender.email
    assert msg["Reply-To"] == pub.config.reply_to
    assert msg["Subject"] == built.subject
    unsubscribe = msg["List-Unsubscribe"]
    assert re.fullmatch(r"<https://news\.example\.org/unsubscribe/[\w.-]+>", unsubscribe)
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html_part, text_part = parts[1].get_content(), parts[0].get_content()
    assert "%%" not in html_part and "%%" not in text_part
    assert unsubscribe.strip("<>") in html_part and unsubscribe.strip("<>") in text_part
    assert "Hello Sample," in text_part


def test_message_id_is_pinned_and_changes_with_content(pub: Publication, built: Build):
    again = build_issue(pub, SAMPLE)
    assert again.message == built.message
    replace_in(issue_dir(pub.root) / "pieces" / "energy.md", "grid", "network")
    changed = build_issue(pub, SAMPLE)
    assert changed.content_hash != built.content_hash
    first = email.message_from_bytes(built.message)["Message-ID"]
    assert first != email.message_from_bytes(changed.message)["Message-ID"]


def test_report_counts(built: Build):
    report = built.report
    assert report["pieces"] == 4
    assert report["sizes"]["email.html"] == len(built.html.encode())
    words = sum(len(p.split()) for pc in built.issue.pieces for p in markdown.paragraphs(pc.body))
    assert report["words"] == words > 1200


def test_hostile_content_is_escaped(publication: Path):
    config = publication / "newsletter.yaml"
    replace_in(config, "name: Elena Marsh", 'name: "<script>alert(1)</script> & Co"')
    piece = issue_dir(publication) / "pieces" / "energy.md"
    replace_in(
        piece, "title: The transition", "title: '<b>Bold</b> & <script>x()</script>'\nx: The"
    )
    built = build_issue(Publication.load(publication), SAMPLE)
    for html in (built.html, built.web_html):
        assert "<script>" not in html and "<b>Bold</b>" not in html
        doc = _doc(html)
        assert doc.xpath("//script") == [] and doc.xpath("//h2/b") == []
        text = doc.text_content()
        assert "<script>alert(1)</script> & Co" in text
        assert "<b>Bold</b> & <script>x()</script>" in text
    assert "By <script>alert(1)</script> & Co" in built.text


def test_raw_html_in_markdown_is_shown_as_text(publication: Path):
    piece = issue_dir(publication) / "pieces" / "cyber.md"
    piece.write_text(piece.read_text() + "\n<iframe src='https://evil.example.org'></iframe>\n")
    built = build_issue(Publication.load(publication), SAMPLE)
    assert _doc(built.html).xpath("//iframe") == []
    assert "<iframe src=‘https://evil.example.org’></iframe>" in _doc(built.html).text_content()


def test_remote_hero_is_used_as_is(publication: Path):
    manifest = issue_dir(publication) / "issue.yaml"
    replace_in(manifest, "image: hero.jpg", "image: https://cdn.example.org/hero.jpg")
    built = build_issue(Publication.load(publication), SAMPLE)
    hero = _doc(built.html).xpath("//img")[0]
    assert hero.get("src") == "https://cdn.example.org/hero.jpg" and hero.get("width") == "600"
    assert not any(name.startswith("hero") for name in built.assets)


def test_publication_template_overrides_packaged(publication: Path):
    import shutil

    from newsletter.compose.render import PACKAGED_TEMPLATES

    target = publication / "templates" / "default"
    shutil.copytree(PACKAGED_TEMPLATES / "default", target, dirs_exist_ok=True)
    replace_in(target / "email.mjml.j2", "{{ piece.t.follow }}:", "Follow on X:")
    built = build_issue(Publication.load(publication), SAMPLE)
    assert "Follow on X:" in built.html and "Follow on Twitter:" not in built.html


def test_template_syntax_error_names_file_and_line(publication: Path):
    import shutil

    from newsletter.compose.render import PACKAGED_TEMPLATES
    from newsletter.core.errors import InputError

    target = publication / "templates" / "default"
    shutil.copytree(PACKAGED_TEMPLATES / "default", target, dirs_exist_ok=True)
    replace_in(target / "email.txt.j2", "{{ pub.name | upper }}", "{{ pub.name | upper }")
    with pytest.raises(InputError) as info:
        build_issue(Publication.load(publication), SAMPLE)
    assert "email.txt.j2:2: error: template error" in str(info.value)


def test_message_lines_respect_rfc_limits(built: Build):
    lines = built.message.decode("ascii").split("\r\n")
    end_of_headers = lines.index("")
    headers, body = lines[:end_of_headers], lines[end_of_headers:]
    assert all(len(line) <= 998 for line in headers)
    assert not any(line.startswith("List-Unsubscribe: =?") for line in headers)
    assert max(len(line) for line in body) <= 76  # quoted-printable limit, RFC 2045
