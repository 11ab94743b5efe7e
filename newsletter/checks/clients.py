"""Email-client support: HTML and CSS in the output that major clients do not support.

The support data is caniemail.com's (newsletter.checks.caniemail). A feature is reported when
the newest tested version of Gmail, Outlook (Windows), Apple Mail or Yahoo! Mail does not
support it at all; partial support is not reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from newsletter.checks.caniemail import (
    ATTRIBUTE_GROUPS,
    ELEMENT_GROUPS,
    IMAGE_TYPES,
    Support,
    at_rule_features,
    css_features,
    load_support,
    selector_features,
)
from newsletter.checks.css import DocRule, declarations, document_rules, is_enhancement
from newsletter.checks.model import WARNING, Context, Finding, excerpt

# A declaration that sets a property to its initial value renders the same where it is ignored.
INITIAL = {
    "outline": {"none", "0"},
    "word-spacing": {"normal", "0"},
    "letter-spacing": {"normal", "0"},
    "word-break": {"normal"},
    "border-spacing": {"0", "0px"},
    "overflow": {"visible"},
    "opacity": {"1"},
    "max-height": {"none"},
    "max-width": {"none"},
    "height": {"auto"},
    "width": {"auto"},
}
# Properties that only change how a word too long for the line is broken: a client ignoring
# them renders the same unless the element holds such a word.
LINE_BREAKING = {"word-break", "overflow-wrap", "word-wrap"}
LONG_WORD = 30  # characters; longer words may not fit a phone-width line
# CSS properties that an HTML attribute on the same element backs up for older clients.
ATTRIBUTE_FALLBACK = {
    "border-spacing": "cellspacing",
    "height": "height",
    "width": "width",
    "background-color": "bgcolor",
    "background": "bgcolor",
    "text-align": "align",
    "vertical-align": "valign",
}


@dataclass
class Usage:
    """Where a feature is used: how many times and a first example."""

    count: int = 0
    example: str = ""


def _inline_declarations(el, decls: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Declarations worth checking: not at their initial value, not backed by an attribute,
    not a line-breaking rule on text without an over-long word."""
    kept = []
    for name, value in decls:
        plain = value.lower().replace("!important", "").strip()
        if plain in INITIAL.get(name, ()):
            continue
        if ATTRIBUTE_FALLBACK.get(name, " ") in el.attrib:
            continue
        if name in LINE_BREAKING and not has_long_word(el):
            continue
        kept.append((name, value))
    return kept


def has_long_word(el) -> bool:
    """True when the element's text holds a word of more than LONG_WORD characters."""
    return any(len(word) > LONG_WORD for word in el.text_content().split())


def hidden_preheader(ctx: Context):
    """The hidden preheader element (display:none before the content), if the email has one."""
    preheader = ctx.build.issue.manifest.preheader.strip()
    body = ctx.doc.find("body")
    if body is None or not preheader:
        return None
    for el in body.iterchildren():
        if not isinstance(el.tag, str):
            continue
        style = dict(declarations(el.get("style", "")))
        if style.get("display", "").startswith("none") and preheader[:20] in el.text_content():
            return el
        if el.text_content().strip():
            return None
    return None


def used_features(ctx: Context, support: Support) -> tuple[dict[str, Usage], dict[str, Usage]]:
    """caniemail features the HTML uses: (in elements and inline styles, in <style> blocks)."""
    inline: dict[str, Usage] = {}
    styled: dict[str, Usage] = {}

    def note(slug: str, example: str, into: dict[str, Usage]) -> None:
        if slug not in support.features:
            return
        usage = into.setdefault(slug, Usage())
        usage.count += 1
        usage.example = usage.example or example

    skip = hidden_preheader(ctx)
    essential = [r for r in document_rules(ctx.doc) if not is_enhancement(ctx.doc, r)]
    if essential:
        _style_features(support, essential, lambda s, e: note(s, e, styled))
        note("html-style", "<style>", styled)
    for el in ctx.doc.iter():
        tag = el.tag
        if not isinstance(tag, str) or el is skip:
            continue
        tag = tag.lower()
        if tag == "style":
            continue
        kind = el.get("type", "").lower()
        if tag in ("input", "button"):
            default = "submit" if tag == "button" else "text"
            note(f"html-{tag}-{kind or default}", f"<{tag}>", inline)
        elif tag == "body":
            if _body_styles_lost(el):
                note("html-body", "<body style=…>", inline)
        else:
            note(ELEMENT_GROUPS.get(tag, f"html-{tag}"), f"<{tag}>", inline)
        for attr, value in el.attrib.items():
            attr = attr.lower()
            if attr.startswith("aria-"):
                continue  # assistive hints: a client dropping them changes nothing visible
            slug = ATTRIBUTE_GROUPS.get(attr, f"html-{attr}")
            if slug in support.features and (
                slug.startswith("css-") or "attribute" in support.features[slug]["title"]
            ):
                note(slug, f'<{tag} {attr}="{excerpt(value, width=30)}">', inline)
            if attr == "style":
                kept = _inline_declarations(el, declarations(value))
                for slug, text in css_features(support, kept):
                    note(slug, f'<{tag} style="{excerpt(text, width=50)}">', inline)
        _link_and_image_features(el, tag, lambda s, e: note(s, e, inline))
    return inline, styled


def _body_styles_lost(body) -> bool:
    """True when <body> carries a background that no wrapper element repeats."""
    colour = dict(declarations(body.get("style", ""))).get("background-color") or body.get(
        "bgcolor"
    )
    if not colour:
        return False
    for el in body.iter():
        if el is not body and colour in (el.get("style", "") + el.get("bgcolor", "")):
            return False
    return True


def _link_and_image_features(el, tag: str, note) -> None:
    href = el.get("href", "") if tag == "a" else ""
    if href.startswith("#"):
        note("html-anchor-links", f'<a href="{href}">')
    elif href.lower().startswith("mailto:"):
        note("html-mailto-links", f'<a href="{href}">')
    if tag == "img":
        src = el.get("src", "")
        if src.lower().startswith("data:"):
            note("image-base64", "<img src=data:…>")
        else:
            match = re.search(r"\.([a-z0-9]+)(?:[?#]|$)", src.lower())
            if match:
                ext = IMAGE_TYPES.get(match.group(1), match.group(1))
                note(f"image-{ext}", f'<img src="{excerpt(src, width=40)}">')


def _style_features(support: Support, essential: list[DocRule], note) -> None:
    """Features of the <style> rules that are not enhancements (see css.is_enhancement)."""
    preludes = dict.fromkeys(at for item in essential for at in item.rule.at_rules)
    for prelude in preludes:
        for slug in at_rule_features(prelude):
            note(slug, excerpt(prelude, width=60))
    for item in essential:
        rule = item.rule
        if rule.selector.startswith("@"):
            for slug in at_rule_features(rule.selector):
                note(slug, excerpt(rule.selector, width=60))
        for slug in selector_features(rule.selector):
            note(slug, f"<style> {excerpt(rule.selector, width=50)}")
        for slug, text in css_features(support, rule.declarations):
            note(slug, f"<style> {excerpt(rule.selector + ' { ' + text, width=60)} }}")


def check_clients(ctx: Context) -> list[Finding]:
    """Warn about each feature that Gmail, Outlook (Windows), Apple Mail or Yahoo lacks."""
    support = load_support()
    inline, styled = used_features(ctx, support)
    findings = []
    for slug, usage in sorted(inline.items()):
        clients = support.unsupported(slug)
        if not clients:
            continue
        feature = support.features[slug]
        times = "once" if usage.count == 1 else f"{usage.count} times"
        findings.append(
            Finding(
                WARNING,
                "clients.unsupported",
                f"{feature['title']} is not supported by {', '.join(clients)} (used {times})",
                f"avoid it or give those clients a fallback; see {feature['url']}",
                part="html",
                excerpt=usage.example,
            )
        )
    ignored: dict[str, list[str]] = {}
    for slug in sorted(styled):
        for client in support.unsupported(slug):
            ignored.setdefault(client, []).append(support.features[slug]["title"])
    if ignored:
        who = "; ".join(f"{client}: {', '.join(titles)}" for client, titles in ignored.items())
        first = next(iter(styled.values())).example
        findings.append(
            Finding(
                WARNING,
                "clients.style-block",
                f"CSS left in <style> blocks that applies to the email unconditionally is "
                f"ignored in part by {', '.join(ignored)}; they show the inlined styles only "
                f"({who})",
                "keep everything the email needs to read well in inline styles (the build "
                "inlines CSS); use <style> only for enhancements: media queries (phone layout, "
                "dark mode) and client hooks such as [data-ogsc]",
                part="html",
                excerpt=first,
            )
        )
    return findings
