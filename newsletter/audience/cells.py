"""CSV cells a spreadsheet will not run as formulas (OWASP's CSV injection rule), read back as
they were written.

A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula to Excel,
LibreOffice and Google Sheets (`=HYPERLINK(...)`, `=cmd|...`): `export` writes it with a `'`
in front, which spreadsheets show as text. So that an export imports back to the same values,
a cell whose text after its leading quotes starts with one of those characters gets one more
quote, and `import` takes exactly one off such a cell.
"""

from __future__ import annotations

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def _risky(value: str) -> bool:
    return value.lstrip("'").startswith(TRIGGERS)


def escape_cell(value: str) -> str:
    """The text to write for `value`."""
    return "'" + value if _risky(value) else value


def unescape_cell(cell: str) -> str:
    """The value a cell written by `escape_cell` stands for (other cells are left as they are)."""
    return cell[1:] if cell.startswith("'") and _risky(cell) else cell


def unescape_row(cells: list[str]) -> list[str]:
    """`unescape_cell` over a row; the row itself when no cell starts with a quote (the
    import's hot path)."""
    for cell in cells:
        if cell[:1] == "'":
            return [unescape_cell(c) for c in cells]
    return cells
