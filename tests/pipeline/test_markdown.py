"""The plain-text renderer keeps every word, wraps at 72 columns and footnotes links."""

from __future__ import annotations

from newsletter.build.markdown import paragraphs, to_text

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
