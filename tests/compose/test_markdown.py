"""The plain-text renderer keeps every word, wraps at 72 columns and footnotes links."""

from __future__ import annotations

from newsletter.compose.markdown import paragraphs, to_text

SOURCE = """\
Grid operators face a *hard* winter, as [our report](https://example.org/r) shows in some \
detail across several paragraphs of careful argument that runs well past one line.

1. First numbered point
2. Second point with [a link](https://example.org/two)

- A bullet that is long enough to need wrapping onto a second line, so the hanging indent shows.
- Short bullet

Write to [us](mailto:info@example.org).
"""


def test_wrapping_and_footnotes() -> None:
    text = to_text(SOURCE)
    assert all(len(line) <= 72 for line in text.splitlines())
    assert "our report [1]" in text and "a link [2]" in text
    assert text.endswith("[1] https://example.org/r\n[2] https://example.org/two")
    assert "us <info@example.org>" in text


def test_lists_keep_markers_and_hanging_indent() -> None:
    lines = to_text(SOURCE).splitlines()
    assert "1. First numbered point" in lines
    assert any(line.startswith("2. Second point") for line in lines)
    bullet = next(i for i, line in enumerate(lines) if line.startswith("- A bullet"))
    assert lines[bullet + 1].startswith("  ") and not lines[bullet + 1].startswith("   ")


def test_no_words_lost() -> None:
    text = " ".join(to_text(SOURCE).split())
    for paragraph in paragraphs(SOURCE):
        for word in paragraph.split():
            assert word.strip("*.,") in text


def test_images_alone_become_figures_and_inline_ones_keep_their_place() -> None:
    from newsletter.compose.markdown import Figure, to_html, to_text

    sizes = {"chart.png": Figure("https://x.example/c.png", 552, 300, "Chart")}

    def figures(src: str) -> Figure:
        return sizes.get(src) or Figure(src, 552, None, "Photo")

    source = (
        "Text with an ![icon](https://cdn.example/i.png) inline.\n\n"
        '![Queue by year](chart.png "Queue length. Source: Grid data")\n'
    )
    html = to_html(source, figures)
    assert '<img src="https://cdn.example/i.png" alt="icon" />' in html  # no size forced
    assert '<div class="figure"><img class="figure-img" src="https://x.example/c.png"' in html
    assert 'width="552" height="300"' in html
    assert (
        '<p class="caption">Queue length. <span class="credit">Source: Grid data</span></p>' in html
    )
    assert "<p><div" not in html
    text = to_text(source, figures=figures)
    assert "[Chart: Queue by year] Queue length. Source: Grid data" in text
    assert to_html(source) == to_html(source)  # the shared parse is never changed
    assert "x.example" not in to_html(source)
