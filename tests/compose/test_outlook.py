"""Outlook (Windows) reads widths from attributes and needs MJML's conditional ghost tables."""

from __future__ import annotations

from lxml import html as lxml_html

from newsletter.checks.css import declarations
from tests.golden import GOLDEN


def _doc():
    return lxml_html.document_fromstring((GOLDEN / "email.html").read_text(encoding="utf-8"))


def test_every_image_and_sized_table_has_a_width_attribute() -> None:
    doc = _doc()
    images = list(doc.iter("img"))
    assert len(images) >= 2  # the hero and the chart
    for img in images:
        assert img.get("width", "").isdigit() and img.get("height", "").isdigit(), img.attrib
        style = dict(declarations(img.get("style", "")))
        assert style.get("width") == "100%" and style.get("height") == "auto"  # fluid on phones
        assert style.get("max-width") == f"{img.get('width')}px"  # never wider than its own size
    for table in doc.iter("table"):
        if "width" in dict(declarations(table.get("style", ""))):
            assert table.get("width"), table.attrib


def test_conditional_ghost_tables_give_outlook_the_600px_column() -> None:
    html = (GOLDEN / "email.html").read_text(encoding="utf-8")
    assert html.count("<!--[if mso | IE]>") >= 10
    assert 'width="600" ' in html and "<o:PixelsPerInch>96</o:PixelsPerInch>" in html


def test_no_text_colour_without_a_background_in_its_section() -> None:
    """Clients that invert colours swap text and background together only where both are set:
    every element that sets a text colour sits inside a section with its own background."""
    doc = _doc()
    for el in doc.iter():
        if not isinstance(el.tag, str) or "color" not in dict(declarations(el.get("style", ""))):
            continue
        if not (el.text_content() or "").strip() or el.tag in ("body", "html"):
            continue
        if "none" in dict(declarations(el.get("style", ""))).get("display", ""):
            continue  # the hidden preheader
        owners = [
            a
            for a in el.iterancestors()
            if a.tag != "body"
            and "nl-body" not in a.get("class", "")
            and (a.get("bgcolor") or "background" in a.get("style", ""))
        ]
        assert owners, lxml_html.tostring(el)[:120]
