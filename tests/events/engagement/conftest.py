"""Report fixtures: the public side's publication on each database (tests/public/conftest.py)."""

from tests.public.conftest import sendgrid, signing_key, site  # noqa: F401
