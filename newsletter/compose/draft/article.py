"""An article page: its main text (trafilatura), its authors, its language and its Open Graph
image with that image's alt text and credit."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from lxml import html as lxml_html
from lxml.etree import ParserError, _Element

from newsletter.compose.draft.fetch import Page, is_web_url
from newsletter.compose.draft.text import Block, blocks_of_extract, plain

HTML_TYPES = ("text/html", "application/xhtml+xml", "")


@dataclass(frozen=True)
class PageImage:
    """The picture a page shows when shared (og:image), with what the page says about it."""

    url: str
    alt: str
    credit: str


@dataclass(frozen=True)
class Article:
    title: str
    blocks: tuple[Block, ...]
    authors: tuple[str, ...]
    language: str | None
    image: PageImage | None


class NotAnArticle(Exception):
    """The page is not HTML, or has no text to extract."""


def _meta(tree: _Element, *names: str) -> str:
    """The first non-empty content of <meta property|name=NAME>, in the order of `names`."""
    for name in names:
        for element in tree.iterfind(".//meta"):
            if name in (element.get("property"), element.get("name")):
                value = plain(element.get("content") or "")
                if value:
                    return value
    return ""


def _credit(tree: _Element, image_url: str, base: str) -> str:
    """The credit the page prints with its og:image: the text of an element whose class says
    "credit" inside the <figure> that shows that image."""
    for img in tree.iterfind(".//img"):
        if urllib.parse.urljoin(base, img.get("src") or "") != image_url:
            continue
        figure = next((a for a in img.iterancestors() if a.tag == "figure"), None)
        if figure is None:
            continue
        for element in figure.iter():
            if isinstance(element.tag, str) and "credit" in (element.get("class") or "").split():
                return plain(element.text_content())
    return ""


def page_image(tree: _Element, base: str) -> PageImage | None:
    """The page's Open Graph image (or Twitter card image), as an absolute http(s) URL."""
    src = _meta(tree, "og:image:secure_url", "og:image:url", "og:image", "twitter:image")
    if not src:
        return None
    url = urllib.parse.urljoin(base, src)
    if not is_web_url(url):
        return None
    alt = _meta(tree, "og:image:alt", "twitter:image:alt")
    return PageImage(url, alt, _credit(tree, url, base))


def read_article(page: Page) -> Article:
    """The article on `page`; NotAnArticle when the page is not HTML or holds no text."""
    import trafilatura

    if page.content_type not in HTML_TYPES:
        raise NotAnArticle(f"the page is {page.content_type}, not HTML")
    markup = page.text()
    try:
        tree = lxml_html.document_fromstring(markup)
    except (ParserError, ValueError):
        try:
            tree = lxml_html.document_fromstring(page.body)
        except (ParserError, ValueError) as exc:
            raise NotAnArticle(f"the page could not be parsed ({exc})") from None
    base = page.url
    image = page_image(tree, base)
    language = (tree.get("lang") or tree.get("{http://www.w3.org/XML/1998/namespace}lang")
                or _meta(tree, "og:locale") or None)
    document = trafilatura.bare_extraction(
        markup, url=page.url, with_metadata=True, include_comments=False, include_tables=False,
        include_images=False, include_links=False, deduplicate=False)
    if document is None:
        raise NotAnArticle("no article text was found on the page")
    blocks = tuple(blocks_of_extract(document.body))
    if not blocks:
        raise NotAnArticle("no article text was found on the page")
    authors = tuple(a.strip() for a in (document.author or "").split(";") if a.strip())
    if not authors:
        authors = tuple(filter(None, [_meta(tree, "author", "dc.creator")]))
    title = plain(document.title or "") or _meta(tree, "og:title")
    return Article(title, blocks, authors, language and language.replace("_", "-"), image)
