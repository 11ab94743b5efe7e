"""The inline stage against its reference: premailer 3.10 with the options the build used.

premailer is a test dependency only: the stage does its work (tests/compose/test_inline.py), and
here every page comes out of both byte for byte: the sample's compiled copies, and generated
pages with every kind of selector, declaration and style block the stage treats differently.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from newsletter.compose.inline import image_widths, inline_tree
from newsletter.core.html import parse_page, serialise_page
from tests.conftest import examples
from tests.golden import SAMPLES


def premailer_page(html: str) -> str:
    """`html` inlined by premailer as the build called it until it did the work itself."""
    from premailer import Premailer

    doc = parse_page(html)
    Premailer(
        base_url=None, allow_network=False, allow_loading_external_files=False,
        remove_classes=False, strip_important=False, keep_style_tags=False,
        exclude_pseudoclasses=True, disable_validation=True, disable_basic_attributes=["height"],
        align_floating_images=False, cssutils_logging_level=logging.CRITICAL,
    ).transform(doc)
    image_widths(doc)
    return serialise_page(doc, doctype=True)


def our_page(html: str, cache: Path | None = None) -> str:
    doc = parse_page(html)
    inline_tree(doc, cache)
    return serialise_page(doc, doctype=True)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The compiled (not yet inlined) email and web copy of both sample issues."""
    from newsletter.compose.pipeline import process_images
    from newsletter.compose.publication import Publication
    from newsletter.compose.render import render
    from newsletter.compose.source import load_issue
    from tests.conftest import copy_sample

    pub = Publication.load(copy_sample(tmp_path_factory.mktemp("reference") / "pub"))
    pages = []
    for slug in SAMPLES:
        issue = load_issue(pub, pub.issue_dir(slug))
        email, web = render(pub, issue, images=process_images(pub, issue))
        pages += [email.html, web.html]
    return pages


def test_the_samples_pages_are_inlined_as_premailer_did(compiled: list[str],
                                                       tmp_path: Path) -> None:
    """Both sample issues' copies: parsed CSS from cssutils, then again from the disk cache."""
    assert len(compiled) == 4
    for html in compiled:
        expected = premailer_page(html)
        assert "<style" in html and expected != html
        assert our_page(html, tmp_path / "css") == expected
        assert our_page(html, tmp_path / "css") == expected


TAGS = ("div", "p", "td", "table", "img", "a", "span", "h2", "li")
SELECTORS = (
    "p", "td", "img", "a", "div", ".a", ".b", "#x", "p.a", "div p", "td > a", "div .b",
    "p:first-child", "li:last-child", "li:nth-child(2)", "a:hover", "a:visited", "*", "div *",
    "h2, .a", "img.b", "table td", "span#y", "a[href]",
)
DECLARATIONS = (
    "color:red", "color:#ABC", "color:#abcdef", "text-align:center", "vertical-align:top",
    "background-color:#f0f", "background-color:transparent", "background-color:rgb(1,2,3)",
    "width:100%", "width:20px", "max-width:200px", "height:40px", "height:auto",
    "font-family:'Open Sans', Arial", "margin:0 auto", "float:left", "float:right",
    "padding:unset", "color:blue !important", "line-height:1.5", "mso-line-height-rule:exactly",
    "word-break:break-word", "border:1px solid #ccc", "display:none",
    "font-size:0px", "COLOR:Green", "text-align: left",
)
MEDIA = ("", ' media="all"', ' media="screen"', ' media="print"',
         ' media="screen and (min-width:480px)"', ' data-premailer="ignore"')

declarations = st.lists(st.sampled_from(DECLARATIONS), min_size=0, max_size=4)


@st.composite
def rules(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 5)) == 0:
        inner = ";".join(draw(declarations))
        return f"@media only screen and (max-width:479px) {{ .a {{ {inner} }} }}"
    selector = draw(st.sampled_from(SELECTORS))
    return f"{selector} {{ {';'.join(draw(declarations))} }}"


@st.composite
def elements(draw: st.DrawFn, depth: int = 0) -> str:
    tag = draw(st.sampled_from(TAGS))
    attributes = ""
    if draw(st.booleans()):
        attributes += f' class="{draw(st.sampled_from(("a", "b", "a b", "c")))}"'
    if draw(st.integers(0, 3)) == 0:
        attributes += f' id="{draw(st.sampled_from(("x", "y")))}"'
    if draw(st.booleans()):
        attributes += f' style="{";".join(draw(declarations))}"'
    if tag == "img":
        return f'<img src="i.png" width="{draw(st.sampled_from(("100%", "300")))}"{attributes}>'
    children = ""
    if depth < 2:
        children = "".join(draw(st.lists(elements(depth + 1), max_size=3)))
    return f"<{tag}{attributes}>text{children}</{tag}> tail"


@st.composite
def pages(draw: st.DrawFn) -> str:
    blocks = "".join(
        f"<style{draw(st.sampled_from(MEDIA))}>{' '.join(draw(st.lists(rules(), max_size=5)))}"
        "</style>"
        for _ in range(draw(st.integers(0, 3)))
    )
    body = "".join(draw(st.lists(elements(), min_size=1, max_size=4)))
    if draw(st.integers(0, 5)):
        head = f"<head><title>t</title>{blocks}</head>"
        return f"<!DOCTYPE html><html>{head}<body>{body}</body></html>"
    return f"<html><body>{blocks}{body}</body></html>"  # no <head>: one is added


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pages())
@example(  # an !important declaration of a less specific rule wins over a more specific one
    "<html><head><style>p { color:blue !important } p.a { color:red; width:3px }</style>"
    '</head><body><p class="a" style="margin:0">x</p></body></html>')
@example(  # two blocks: the later block's rule wins at equal specificity; own style wins last
    "<html><head><style>.a { color:red; text-align:left }</style><style>.a { color:blue }"
    '</style></head><body><p class="a" style="text-align:right">x</p></body></html>')
def test_generated_pages_are_inlined_as_premailer_does(html: str) -> None:
    assert our_page(html) == premailer_page(html)
