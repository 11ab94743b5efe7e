"""The build: reading a publication and an issue through to dist/<slug>/, one module per stage.

source (manifest and pieces) -> schema (validation) -> images (Pillow: resize, strip, cache)
-> markdown -> render (Jinja2 + MJML) -> inline (CSS onto elements; `css` parses it) -> package
(MIME, atomic dist/ output); `pipeline.build_issue()` runs them as a flat list. `publication`
loads newsletter.yaml; `scaffold` writes new publications and issues. What a build derived from
unchanged sources is kept under `.newsletter/cache/` (`cache`, `validated`, `memo`), so a cold
build mostly reads it back. The build knows nothing of subscribers or sending.
"""

from typing import Any

__all__ = [
    "Build",
    "build_issue",
    "preview_preferences_url",
    "preview_unsubscribe_url",
    "write_build",
]


def __getattr__(name: str) -> Any:
    """The pipeline's names, imported on first use: importing `newsletter.compose.publication`
    (as `serve` does) must not load MJML, the CSS inliner and lxml (about 40 MB)."""
    if name in __all__:
        from newsletter.compose import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'newsletter.compose' has no attribute {name!r}")
