"""The email as the preview's frames show it: personalised, then edited in one lxml pass.

`frame_html` personalises a build's HTML for a recipient (name, attributes, their unsubscribe and
preference links), then, in one pass over the parsed page, points every URL under the issue's
archive address at the preview's local copy (so the hero and the charts load offline), opens
links in a new tab (`<base target="_blank">`) and, for `dark`, applies the email's own
`prefers-color-scheme: dark` rules. No regular expression touches the HTML.
"""

from __future__ import annotations

import re

from lxml.html import HtmlElement

from newsletter.compose import Build, preview_preferences_url, preview_unsubscribe_url
from newsletter.compose.publication import Publication
from newsletter.core.personalise import Recipient, personalise
from newsletter.web import add_first, edit_page

#: A CSS media condition (in <style> text, never HTML): the email's dark-mode rules.
DARK_QUERY = re.compile(r"\(\s*prefers-color-scheme\s*:\s*dark\s*\)", re.I)
URL_ATTRIBUTES = ("href", "src", "background", "poster")


def personalised(pub: Publication, build: Build, recipient: Recipient) -> tuple[str, str]:
    """The build's HTML and text parts as `recipient` would receive them."""
    return personalise(build.html, build.text, recipient,
                       preview_unsubscribe_url(pub, recipient.email),
                       preview_preferences_url(pub, recipient.email))


def frame_html(pub: Publication, build: Build, recipient: Recipient, local: str, *,
               dark: bool = False, html: str | None = None) -> str:
    """The email (or the page `html` of the build) for a preview frame: personalised for
    `recipient`, archive URLs under `local` (e.g. "/web/"), links in a new tab, `dark`."""
    if html is None:
        html, _ = personalised(pub, build, recipient)
    prefix = f"{pub.config.archive_url}{build.slug}/"

    def edit(doc: HtmlElement) -> None:
        relink(doc, prefix, local)
        add_first(doc.find("head"), '<base target="_blank">')
        if dark:
            always_dark(doc)

    return edit_page(html, edit)


def relink(doc: HtmlElement, prefix: str, local: str) -> None:
    """Point URLs that start with `prefix` at `local` instead: URL attributes, each candidate
    of a srcset, and url(...) in style attributes."""
    for element in doc.iter():
        if not isinstance(element.tag, str):
            continue  # comments, processing instructions
        for name in URL_ATTRIBUTES:
            value = element.get(name)
            if value and value.startswith(prefix):
                element.set(name, local + value[len(prefix):])
        srcset = element.get("srcset")
        if srcset and prefix in srcset:
            element.set("srcset", ", ".join(
                local + part.strip()[len(prefix):] if part.strip().startswith(prefix)
                else part.strip() for part in srcset.split(",")))
        style = element.get("style")
        if style and prefix in style:
            element.set("style", style.replace(prefix, local))


def always_dark(doc: HtmlElement) -> None:
    """As a client in dark mode shows the email: its `prefers-color-scheme: dark` rules apply
    (the condition in each <style> becomes always true)."""
    for style in doc.iter("style"):
        if style.text and DARK_QUERY.search(style.text):
            style.text = DARK_QUERY.sub("(min-width: 0px)", style.text)
