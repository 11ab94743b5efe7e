"""The drafting's pure parts: Markdown that is only text (a property against markdown-it), the
opening within a word budget (against a plain reference), blocks of HTML, author matching."""

from __future__ import annotations

import html
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from newsletter.compose.draft.experts import loose, match_author, slugify
from newsletter.compose.draft.text import Block, blocks_of_html, escape_markdown, opening, plain
from newsletter.compose.publication import Publication
from newsletter.core.personalise import PLACEHOLDER

#: The project's Markdown (commonmark, no raw HTML, strikethrough) without the typographer,
#: whose curly quotes and dashes are not markup.
REFERENCE = MarkdownIt("commonmark", {"html": False}).enable("strikethrough")
MARKUP = "\\`*_[]<>#!~&;{}()%|-+=.:0123456789 \u00a0"
TOKENS = ["*", "**", "_", "`", "\\", "[x](https://e.org)", "![a](b.png)", "<https://e.org>",
          "<b>", "</p>", "&copy;", "&#35;", "&amp;", "# ", "## ", "1. ", "2) ", "- ", "+ ", "> ",
          "---", "===", "~~", "```", "%%email%%", "%%attr.x|y%%", "{{ x }}", "|", " ", "  ",
          "word", "كلمة", "\u200f", "\u00a0"]
TEXTS = (st.text(alphabet=st.sampled_from(MARKUP) | st.characters(codec="utf-8"), max_size=80)
         | st.lists(st.sampled_from(TOKENS), max_size=12).map("".join))


@settings(max_examples=int(os.environ.get("DRAFT_EXAMPLES", 300)), deadline=None)
@given(TEXTS)
def test_escaped_text_renders_as_exactly_that_text(raw: str) -> None:
    text = plain(raw)
    rendered = REFERENCE.render(escape_markdown(text))
    if not text.strip():
        assert rendered == ""
        return
    # One paragraph holding the text itself (Markdown trims the ends of a paragraph; a zero-width
    # space splits a would-be placeholder): no element, entity or placeholder of its own.
    assert rendered.startswith("<p>") and rendered.endswith("</p>\n"), rendered
    inner = rendered[3:-5]
    assert html.unescape(inner).replace("\u200b", "") == text.strip().replace("\u200b", "")
    assert "<" not in inner and not PLACEHOLDER.search(html.unescape(inner))


def reference_opening(texts: list[str], budget: int) -> list[str]:
    """Whole paragraphs from the start while their words fit the budget."""
    chosen, used = [], 0
    for text in texts:
        if used + len(text.split()) > budget:
            break
        chosen.append(text)
        used += len(text.split())
    return chosen


WORDS = st.lists(st.sampled_from(["policy", "grid.", "queue", "حداد", "؟", "tariff,", "(c)"]),
                 min_size=1, max_size=40).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(st.lists(WORDS, max_size=8), st.integers(min_value=1, max_value=60))
def test_the_opening_is_the_start_of_the_text_within_the_budget(
        texts: list[str], budget: int) -> None:
    blocks = [Block("p", t) for t in texts]
    chosen = opening(blocks, budget)
    whole = reference_opening(texts, budget)
    if whole:
        assert [b.text for b in chosen] == whole
    elif texts:  # a first paragraph longer than the budget: cut, never empty
        [cut] = chosen
        assert cut.words <= budget
        assert texts[0].startswith(cut.text.removesuffix("…").rstrip(",;:،؛"))
    else:
        assert chosen == []


def test_a_long_first_paragraph_is_cut_at_a_sentence_when_it_can_be() -> None:
    text = "One two three. Four five six seven eight nine ten eleven twelve."
    assert opening([Block("p", text)], 8) == [Block("p", "One two three. Four five six seven "
                                                         "eight…")]
    assert opening([Block("p", text)], 5) == [Block("p", "One two three.")]


def test_blocks_of_html_keep_paragraphs_and_lists_and_drop_the_rest() -> None:
    markup = ("<div class='share'><a href='#'>Share on X</a><button>Print</button></div>"
              "<h2>Subheading</h2><p>First<br>line with <em>stress</em><!-- a comment -->.</p>"
              "<script>track()</script><ul><li>one</li><li>two <b>bold</b></li></ul>"
              "<figure><img src=x><figcaption>Photo</figcaption></figure>"
              "<blockquote><p>Quoted.</p></blockquote><p>\u200fمرحبا\u00a0:</p>")
    assert blocks_of_html(markup) == [
        Block("p", "First line with stress."), Block("li", "one"), Block("li", "two bold"),
        Block("p", "Quoted."), Block("p", "\u200fمرحبا\u00a0:")]
    assert blocks_of_html("Just text, <i>no</i> paragraphs") == [
        Block("p", "Just text, no paragraphs")]
    assert blocks_of_html("") == []


@pytest.fixture(scope="module")
def experts():
    from tests.conftest import ROOT

    return Publication.load(ROOT).config.experts


@pytest.mark.parametrize(("author", "expert", "how"), [
    ("Elena Marsh", "elena-marsh", "exact"),
    ("Tomás Reyes", "tomas-reyes", "exact"),
    ("tomas reyes", "tomas-reyes", "loose"),
    ("TOMÁS  REYES", "tomas-reyes", "loose"),
    ("سميرة حداد", "samira-haddad", "exact"),  # the name in the registry's Arabic translation
    ("سميرة حدّاد", "samira-haddad", "loose"),  # with a shadda
    ("Helena Ostrander", None, "unknown"),
    ("Jonathan Pryce-Whitfield", None, "unknown"),
])
def test_authors_match_exactly_then_loosely_and_never_by_guess(
        experts, author: str, expert: str | None, how: str) -> None:
    match = match_author(author, experts)
    assert (match.expert, match.how) == (expert, how)
    if author == "Helena Ostrander":
        assert match.closest == ("helen-ostrander",)
    if author.startswith("Jonathan"):
        assert match.closest == ()


def test_two_experts_with_one_name_are_ambiguous(experts) -> None:
    twins = dict(experts)
    twins["elena-marsh-2"] = experts["elena-marsh"].model_copy(update={"name": "Eléna Marsh"})
    match = match_author("elena marsh", twins)
    assert match.expert is None and match.how == "ambiguous"
    assert match.closest == ("elena-marsh", "elena-marsh-2")
    assert match_author("Eléna Marsh", twins).expert == "elena-marsh-2"  # exact still wins


def test_loose_and_slugify() -> None:
    assert loose("  Ó'Brien-Smith, Jr. ") == "o brien smith jr"
    assert loose("أحمد") == loose("احمد")  # hamza forms
    assert slugify("Tomás Reyes") == "tomas-reyes" and slugify("سميرة") == ""
    assert slugify("a" * 100, 10) == "a" * 10
