"""CLI commands: serve, suppressions (filled in by the public-side issue)."""

import click

COMMANDS: list[click.Command] = []
