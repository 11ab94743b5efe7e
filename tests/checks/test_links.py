"""Links and images: absolute http(s)/mailto, no data: URIs or shorteners, https, alt text."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from newsletter.checks import ERROR, WARNING
from tests.checks.conftest import ISSUE, check, edit, own_template, write_piece

BODY = """Links below.

[relative](/about/us) and [anchor](#top)

![pixel](data:image/png;base64,iVBORw0KGgo=)

[short](https://bit.ly/3abcd)

[own site over http](http://news.example.org/archive/)

[other over http](http://plain.example.com/page)

[bad mail](mailto:someone@@example)

[good mail](mailto:press@example.org) and [good](https://example.org/ok)

![](https://example.org/decorative.png) ![chart](charts/figure.png)
"""


def findings_by_line(publication: Path) -> dict[int, set[tuple[str, str]]]:
    chart = publication / ISSUE / "charts" / "figure.png"
    chart.parent.mkdir()
    Image.new("P", (400, 200)).save(chart)
    path = write_piece(publication, "cyber.md", BODY)
    out: dict[int, set[tuple[str, str]]] = {}
    for f in check(publication).findings:
        if f.check.startswith("links.") and f.file == str(path.resolve()):
            out.setdefault(f.line, set()).add((f.check, f.severity))
    return out


def test_each_bad_link_is_reported_at_its_line(publication: Path) -> None:
    found = findings_by_line(publication)
    assert found[8] == {("links.relative", ERROR)}  # both /about/us and #top
    assert found[10] == {("links.data-uri", ERROR)}
    assert found[12] == {("links.shortener", WARNING)}
    assert found[14] == {("links.http", ERROR)}  # the publication's own https site
    assert found[16] == {("links.http", WARNING)}
    assert found[18] == {("links.mailto", ERROR)}
    assert 20 not in found  # good links
    # the local chart is published at the archive URL, so it is no longer relative
    assert found[22] == {("links.image-alt-empty", WARNING)}
    assert set(found) == {8, 10, 12, 14, 16, 18, 22}


def test_image_without_alt_attribute_is_an_error(publication: Path) -> None:
    template = own_template(publication)
    edit(template / "email.mjml.j2", 'alt="{{ issue.hero.alt }}" ', "")
    report = check(publication)
    images = {(f.check, f.severity) for f in report.findings if f.check.startswith("links.image")}
    assert images == {("links.image-alt", ERROR)}


def test_hero_http_image_warns(publication: Path) -> None:
    yaml = publication / ISSUE / "issue.yaml"
    edit(yaml, "image: hero.jpg", "image: http://images.example.com/hero.jpg")
    findings = [f for f in check(publication).findings if f.check == "links.http"]
    assert len(findings) == 1 and findings[0].file.endswith("issue.yaml")
    assert findings[0].line == 5
