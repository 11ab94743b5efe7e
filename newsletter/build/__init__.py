"""The build: reading a publication and an issue through to dist/<slug>/, one module per stage.

source (manifest and pieces) -> schema (validation) -> markdown -> render (Jinja2 + MJML)
-> inline (premailer) -> package (MIME, atomic dist/ output); `pipeline.build_issue()` runs them
as a flat list. `publication` loads newsletter.yaml; `scaffold` writes new publications and
issues. The build knows nothing of subscribers or sending.
"""

from newsletter.build.pipeline import Build, build_issue, preview_unsubscribe_url, write_build

__all__ = ["Build", "build_issue", "preview_unsubscribe_url", "write_build"]
