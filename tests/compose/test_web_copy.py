"""The web copy (index.html): no greeting, no link to itself, a subscribe link, and the tags
search engines and link previews read. And the preheader/intro split: the preheader is hidden
preview text only, `intro:` the visible opening paragraph."""

from __future__ import annotations

from pathlib import Path

from lxml import html as lxml_html

from newsletter.compose import build_issue
from newsletter.compose.bidi import RLM
from newsletter.compose.context import DESCRIPTION_MAX, description_of
from newsletter.compose.publication import Publication
from newsletter.compose.source import load_issue
from tests.compose.helpers import SAMPLE, issue_dir, replace_in

PREHEADER = "Four of our scholars on what policymakers are getting wrong this week"
INTRO = "This week: why clean power waits years for a grid connection"


def _build(root: Path, slug: str = SAMPLE):
    pub = Publication.load(root)
    return pub, build_issue(pub, slug)


def _meta(doc, attribute: str, name: str) -> str | None:
    found = doc.xpath(f"//head/meta[@{attribute}=$name]/@content", name=name)
    assert len(found) <= 1, f"{name} appears {len(found)} times"
    return found[0] if found else None


def _visible_text(doc) -> str:
    """The page's text without its head and the hidden preview block."""
    body = doc.find("body")
    for hidden in body.xpath(".//div[contains(@style, 'display:none')]"):
        hidden.drop_tree()
    return " ".join(body.text_content().split())


def test_web_copy_has_no_greeting_no_self_link_and_a_subscribe_link(publication: Path) -> None:
    pub, build = _build(publication)
    web = lxml_html.document_fromstring(build.web_html)
    view_url = f"{pub.config.archive_url}{SAMPLE}/"
    hrefs = web.xpath("//a/@href")
    assert view_url not in hrefs  # "View in browser" on the page itself pointed to itself
    assert "Hello" not in _visible_text(web)
    [subscribe] = web.xpath("//a[@href=$url]", url=f"{pub.config.public_url}subscribe")
    assert subscribe.text_content() == "Subscribe to Policy Experts Weekly"
    assert not any("%%" in href for href in hrefs)  # nothing personal on a public page
    # the email keeps both: its greeting and the link to the web copy
    email = lxml_html.document_fromstring(build.html)
    assert view_url in email.xpath("//a/@href")
    assert "Hello %%first_name|there%%," in _visible_text(email)


def test_web_copy_has_title_description_canonical_and_open_graph(publication: Path) -> None:
    pub, build = _build(publication)
    web = lxml_html.document_fromstring(build.web_html)
    view_url = f"{pub.config.archive_url}{SAMPLE}/"
    subject = build.issue.manifest.subject
    assert web.findtext(".//head/title") == subject
    assert _meta(web, "name", "description").startswith(PREHEADER)
    assert web.xpath("//head/link[@rel='canonical']/@href") == [view_url]
    assert _meta(web, "property", "og:title") == subject
    assert _meta(web, "property", "og:url") == view_url
    assert _meta(web, "property", "og:type") == "article"
    assert _meta(web, "property", "og:site_name") == pub.config.name
    assert _meta(web, "property", "og:description") == _meta(web, "name", "description")
    image = _meta(web, "property", "og:image")
    assert image == view_url + build.images.get(build.issue.hero_file).name
    assert image in build.assets or image.rsplit("/", 1)[1] in build.assets
    assert _meta(web, "property", "og:image:alt") == build.issue.manifest.hero.alt
    assert _meta(web, "name", "twitter:card") == "summary_large_image"
    # sharing tags belong to the public page, not to the email
    email = lxml_html.document_fromstring(build.html)
    assert _meta(email, "property", "og:title") is None
    assert not email.xpath("//head/link[@rel='canonical']")


def test_without_a_hero_there_is_no_image_tag(publication: Path) -> None:
    manifest = issue_dir(publication) / "issue.yaml"
    text = manifest.read_text(encoding="utf-8")
    start, end = text.index("hero:"), text.index("pieces:")
    manifest.write_text(text[:start] + text[end:], encoding="utf-8")
    _, build = _build(publication)
    web = lxml_html.document_fromstring(build.web_html)
    assert _meta(web, "property", "og:image") is None
    assert _meta(web, "name", "twitter:card") == "summary"


def test_description_falls_back_to_intro_then_first_paragraph(publication: Path) -> None:
    manifest = issue_dir(publication) / "issue.yaml"
    pub = Publication.load(publication)
    replace_in(manifest, 'preheader: "Four', 'old_preheader: "Four')
    issue = load_issue(pub, issue_dir(publication))
    assert description_of(issue).startswith(INTRO)
    replace_in(manifest, "intro: >-", "old_intro: >-")
    issue = load_issue(pub, issue_dir(publication))
    first = "For most of the past decade, the debate about the energy transition"
    described = description_of(issue)
    assert described.startswith(first)
    assert len(described) <= DESCRIPTION_MAX and described.endswith("…")
    assert " ".join(described[:-1].split()) == described[:-1]  # one line, cut at a word


def test_combining_marks_in_attributes_reach_the_page_intact(publication: Path) -> None:
    """MRML writes attribute values with Rust's escaping (a shadda became `\\u{651}`)."""
    arabic = publication / "issues" / f"{SAMPLE}-ar" / "issue.yaml"
    replace_in(arabic, "رسم لأفق مدينة", "رسمٌ لأفقِ مدينةٍ")
    _, build = _build(publication, f"{SAMPLE}-ar")
    for page in (build.html, build.web_html):
        assert "\\u{" not in page
        doc = lxml_html.document_fromstring(page)
        assert doc.xpath("//img[@class='hero']/@alt")[0].startswith("رسمٌ لأفقِ مدينةٍ")
    web = lxml_html.document_fromstring(build.web_html)
    assert "صنّاع" in _meta(web, "name", "description")


def test_preheader_is_hidden_preview_text_only(publication: Path) -> None:
    _, build = _build(publication)
    email = lxml_html.document_fromstring(build.html)
    [preview] = [div for div in email.xpath("//body//div[contains(@style, 'display:none')]")
                 if PREHEADER in div.text_content()]
    assert PREHEADER not in _visible_text(email)
    assert PREHEADER.split(" on ")[0] not in build.text  # not in the text part either
    assert PREHEADER not in " ".join(build.text.split())
    assert preview is not None


def test_intro_is_the_visible_opening_paragraph(publication: Path) -> None:
    _, build = _build(publication)
    for page in (build.html, build.web_html):
        visible = _visible_text(lxml_html.document_fromstring(page))
        assert INTRO in visible
        # it opens the issue: before the first piece's headline
        assert visible.index(INTRO) < visible.index("The transition is stuck in the queue")
    text = " ".join(build.text.split())
    assert text.index("Hello %%first_name|there%%,") < text.index(INTRO) < text.index(
        "The transition is stuck")


def test_intro_takes_markdown_and_is_optional(publication: Path) -> None:
    manifest = issue_dir(publication) / "issue.yaml"
    replace_in(manifest, "  This week: why clean power",
               "  *This week*: [why](https://example.org/why) clean power")
    _, build = _build(publication)
    doc = lxml_html.document_fromstring(build.html)
    assert doc.xpath("//em[text()='This week']")
    assert "https://example.org/why" in doc.xpath("//a/@href")
    replace_in(manifest, "intro: >-", "unused: >-")
    _, build = _build(publication)
    web = lxml_html.document_fromstring(build.web_html)
    assert "This week" not in _visible_text(web)
    # without intro, the web copy has no empty opening section: the first text is the headline
    pieces = web.xpath("//h2[@class='headline']")
    assert pieces[0].text_content() == "The transition is stuck in the queue, not in the lab"


def test_arabic_intro_is_marked_right_to_left_in_the_text_part(publication: Path) -> None:
    _, build = _build(publication, f"{SAMPLE}-ar")
    [line] = [line for line in build.text.splitlines() if "في هذا العدد" in line]
    assert line.startswith(RLM)
