"""Report fixtures: the public side's publication on each database (tests/web/public)."""

from tests.web.public.conftest import sendgrid, signing_key, site  # noqa: F401
