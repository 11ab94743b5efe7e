"""Web parts of the tool: the staff preview server (`newsletter preview`).

Each server lives in its own module and imports Starlette, uvicorn and watchfiles itself, so the
rest of the tool starts without them. This package itself holds only what the preview shares
with the archive (newsletter.archive): the templates in assets/.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

ASSETS = Path(__file__).parent / "assets"


@lru_cache(maxsize=1)
def asset_templates() -> jinja2.Environment:
    """The HTML templates in assets/ (preview page and panels, archive index), autoescaped."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ASSETS)), autoescape=True, trim_blocks=True
    )
