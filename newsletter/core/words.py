"""Counting words: "1 piece", "2 pieces", "1,200 recipients" (English plurals for the CLI), and
the letters that name a subject test's subjects."""

from __future__ import annotations

#: plurals that are not the singular plus "s"
IRREGULAR = {"batch": "batches", "copy": "copies", "reply": "replies", "person": "people",
             "address": "addresses"}


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """`count` and the noun in the number it needs, with thousands separators: 1 piece,
    0 pieces, 2,000 sends."""
    word = singular if count == 1 else (plural_form or IRREGULAR.get(singular, singular + "s"))
    return f"{count:,} {word}"


def letter(index: int) -> str:
    """The letter naming item `index` of a short list (a subject test's subjects): 0 is A."""
    return chr(ord("A") + index)
