"""Helpers for the drafting tests: run `new --from-feed`, read what it wrote, and the articles
as the test site has them."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from click.testing import CliRunner, Result
from lxml import html as lxml_html

from newsletter.cli import main
from tests.compose.draft_site import SITE, Site

SLUG = "2026-12-01"
NAVIGATION = ("Our experts", "Donate", "Share on X", "Share on LinkedIn", "Print",
              "Related commentary", "Get our weekly newsletter", "Subscribe", "Privacy policy",
              "All rights reserved", "We use cookies", "Search the site", "Commentary ›",
              "شارك على", "خبراؤنا", "جميع الحقوق محفوظة", "اشترك")


def draft(root: Path, site: Site, feed: str | None, *args: str, slug: str = SLUG,
          env: dict[str, str] | None = None) -> Result:
    """`newsletter -C root new SLUG --from-feed URL ARGS` in-process (stderr apart)."""
    feed_args = ["--from-feed", site.url(feed)] if feed else ["--from-feed"]
    return CliRunner().invoke(main, ["-C", str(root), "new", slug, *feed_args, *args],
                              env={**site.env, **(env or {})}, catch_exceptions=False)


def check(root: Path, slug: str = SLUG, *args: str) -> Result:
    return CliRunner().invoke(main, ["-C", str(root), "check", slug, "--strict", *args],
                              catch_exceptions=False)


def manifest(root: Path, slug: str = SLUG) -> dict:
    return yaml.safe_load((root / "issues" / slug / "issue.yaml").read_text(encoding="utf-8"))


def piece(root: Path, name: str, slug: str = SLUG) -> tuple[dict, list[str]]:
    """(front matter, body paragraphs with Markdown escapes undone) of a drafted piece."""
    text = (root / "issues" / slug / name).read_text(encoding="utf-8")
    _, front, body = text.split("---\n", 2)
    paragraphs = [re.sub(r"\\(.)", r"\1", p) for p in body.strip().split("\n\n")]
    return yaml.safe_load(front), paragraphs


def article_paragraphs(path: str) -> list[str]:
    """The paragraphs of the article body of a page of the test site, as a reader sees them."""
    tree = lxml_html.fromstring((SITE / path).read_bytes())
    return [" ".join(p.text_content().split())
            for p in tree.xpath("//div[@class='article-body']/p")]


def opening_of(paragraphs: list[str], budget: int) -> list[str]:
    """Reference: whole paragraphs from the start while their words fit in `budget`."""
    chosen, used = [], 0
    for paragraph in paragraphs:
        words = len(paragraph.split())
        if used + words > budget:
            break
        chosen.append(paragraph)
        used += words
    return chosen


def subject_only(root: Path, subject: str, slug: str = SLUG) -> None:
    """What the editor does: replace the subject line, and nothing else."""
    path = root / "issues" / slug / "issue.yaml"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    [number] = [i for i, line in enumerate(lines) if line.startswith("subject:")]
    dumped = yaml.safe_dump(subject, allow_unicode=True, width=1000).split("\n")[0]
    lines[number] = f"subject: {dumped}\n"
    path.write_text("".join(lines), encoding="utf-8")
