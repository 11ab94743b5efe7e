"""CLI commands: init, new, build."""

import click

COMMANDS: list[click.Command] = []
