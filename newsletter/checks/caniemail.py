"""caniemail.com's vocabulary: which of its features a piece of HTML or CSS uses, and which
clients support each (newsletter/data/caniemail.json, refreshed with `make update-caniemail`).
The clients check (checks.clients) walks the email and asks this module what it found.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data" / "caniemail.json"
PROPERTY = re.compile(r"^[a-z][a-z-]*$")
SEMANTIC = (
    "article aside details figcaption figure footer header main mark nav section summary time"
)
ELEMENT_GROUPS = {
    **dict.fromkeys(["h1", "h2", "h3", "h4", "h5", "h6"], "html-h1-h6"),
    **dict.fromkeys(["ul", "ol", "dl"], "html-lists"),
    **dict.fromkeys(SEMANTIC.split(), "html-semantics"),
    **dict.fromkeys(["map", "area"], "html-image-maps"),
}
ATTRIBUTE_GROUPS = {
    "sizes": "html-srcset",
    "usemap": "html-image-maps",
    "inert": "css-inert-attribute",
}
IMAGE_TYPES = {"jpeg": "jpg", "jpg": "jpg", "heic": "heif", "tif": "tiff"}
FUNCTIONS = {
    "rgb": "css-rgb",
    "rgba": "css-rgba",
    "linear-gradient": "css-linear-gradient",
    "radial-gradient": "css-radial-gradient",
    "conic-gradient": "css-conic-gradient",
    "calc": "css-unit-calc",
    "clamp": "css-function-clamp",
    "min": "css-function-min",
    "max": "css-function-max",
    "var": "css-variables",
    "light-dark": "css-function-light-dark",
    **dict.fromkeys(["lch", "oklch", "lab", "oklab"], "css-modern-color"),
}
FUNCTION = re.compile(r"(?<![\w-])([a-z-]+)\(")
UNIT = re.compile(
    r"(?<![\w#.-])-?(?:\d+\.?\d*|\.\d+)(rem|em|ex|ch|vh|vw|vmin|vmax|cm|mm|in|pc|pt|px|%)(?![\w-])"
)
KEYWORDS = {
    "system-ui": "css-sytem-ui",
    "ui-serif": "css-sytem-ui",
    "ui-sans-serif": "css-sytem-ui",
    "ui-rounded": "css-sytem-ui",
    "ui-monospace": "css-sytem-ui",
    "fit-content": "css-intrinsic-size",
    "min-content": "css-intrinsic-size",
    "max-content": "css-intrinsic-size",
    "initial": "css-unit-initial",
}
AT_MEDIA_FEATURES = {
    "prefers-color-scheme": "css-at-media-prefers-color-scheme",
    "prefers-reduced-motion": "css-at-media-prefers-reduced-motion",
    "orientation": "css-at-media-orientation",
    "hover": "css-at-media-hover",
    "device-pixel-ratio": "css-at-media-device-pixel-ratio",
}
PSEUDO = re.compile(r"(::?)([a-z-]+)")
@dataclass
class Support:
    """The vendored caniemail data, indexed for lookups."""

    clients: dict[str, str]
    features: dict[str, dict]
    properties: dict[str, str] = field(default_factory=dict)  # property -> slug
    values: dict[tuple[str, str], str] = field(default_factory=dict)  # (prop, value) -> slug

    def unsupported(self, slug: str) -> list[str]:
        """Names of the clients whose newest tested version does not support `slug`."""
        feature = self.features.get(slug)
        if not feature:
            return []
        return [
            self.clients[client]
            for client, value in feature["support"].items()
            if value.split()[0] == "n" and client in self.clients
        ]

    def property_slug(self, name: str) -> str | None:
        """The feature for CSS property `name`, trying shorthands (padding-left -> padding)."""
        parts = name.split("-")
        while parts:
            slug = self.properties.get("-".join(parts))
            if slug:
                return slug
            parts.pop()
        return None


@lru_cache(maxsize=1)
def load_support(path: Path = DATA) -> Support:
    """Read the vendored data once and build the CSS property index."""
    data = json.loads(path.read_text(encoding="utf-8"))
    support = Support(clients=data["clients"], features=data["features"])
    lists: list[tuple[str, str]] = []
    for slug, feature in data["features"].items():
        if not slug.startswith("css-"):
            continue
        title = feature["title"].removesuffix(" property").strip()
        if ":" in title:
            prop, _, value = title.partition(":")
            support.values[(prop.strip(), value.strip())] = slug
        elif PROPERTY.match(title):
            support.properties[title] = slug
        else:
            lists += [(token, slug) for token in re.split(r"\s*[,&]\s*", title)]
        lists += [(token.strip(), slug) for token in feature["keywords"].split(",")]
    for token, slug in lists:  # grouped titles and keywords never override a direct title
        if PROPERTY.match(token) and "-" in token:
            support.properties.setdefault(token, slug)
    return support


def css_features(support: Support, decls: list[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    for name, value in decls:
        if name.startswith(("-", "mso-")):
            continue  # vendor-specific on purpose
        text = f"{name}: {value}"
        slug = support.property_slug(name)
        if slug:
            yield slug, text
        plain = value.lower().replace("!important", "").strip()
        if (name, plain) in support.values:
            yield support.values[(name, plain)], text
        if "!important" in value.replace(" ", ""):
            yield "css-important", text
        for func in FUNCTION.findall(value.lower()):
            if func in FUNCTIONS:
                yield FUNCTIONS[func], text
        for unit in UNIT.findall(value.lower()):
            yield ("css-unit-percent" if unit == "%" else f"css-unit-{unit}"), text
        for word in re.findall(r"[a-z-]+", value.lower()):
            if word in KEYWORDS:
                yield KEYWORDS[word], text


def selector_features(selector: str) -> Iterator[str]:
    for part in selector.split(","):
        part = part.strip()
        if "," in selector:
            yield "css-selector-grouping"
        for colons, name in PSEUDO.findall(part):
            yield f"css-pseudo-{'element' if colons == '::' else 'class'}-{name}"
        bare = re.sub(r"\[[^\]]*\]|\([^)]*\)", "", part)
        if "[" in part:
            yield "css-selector-attribute"
        if "." in bare:
            yield "css-selector-class"
        if "#" in bare:
            yield "css-selector-id"
        if "*" in bare:
            yield "css-selector-universal"
        for symbol, slug in ((">", "child"), ("+", "adjacent-sibling"), ("~", "general-sibling")):
            if symbol in bare:
                yield f"css-selector-{slug}"
        compounds = re.split(r"\s*[>+~]\s*|\s+", bare)
        if len([c for c in compounds if c]) > 1 and re.search(r"[\w\]\)*]\s+[\w.#\[:*]", bare):
            yield "css-selector-descendant"
        if any(re.match(r"[a-z]", c) for c in compounds):
            yield "css-selector-type"
        if any(re.search(r"\w[.#\[:]|[\])][.#\[]", c) for c in compounds):
            yield "css-selector-chaining"


def at_rule_features(prelude: str) -> Iterator[str]:
    name = prelude.split()[0].lower() if prelude.split() else ""
    slug = {
        "@media": "css-at-media",
        "@font-face": "css-at-font-face",
        "@import": "css-at-import",
        "@keyframes": "css-at-keyframes",
        "@supports": "css-at-supports",
    }.get(name)
    if slug:
        yield slug
    if name == "@media":
        for feature, media_slug in AT_MEDIA_FEATURES.items():
            if feature in prelude:
                yield media_slug
