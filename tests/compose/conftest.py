"""Fixtures of the compose tests: the local copy of the institute's website (drafting)."""

from tests.compose.draft_site import fresh_site, site  # noqa: F401 - fixtures
