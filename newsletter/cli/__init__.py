"""The `newsletter` command: a thin layer over the pipeline's services."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter import __version__
from newsletter.cli import audience, build, check, dispatch, web
from newsletter.cli.common import App


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-C",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    help="Publication folder (default: the current folder).",
)
@click.version_option(__version__, prog_name="newsletter")
@click.pass_context
def main(ctx: click.Context, root: Path) -> None:
    """Assemble, check, preview and dispatch an expert-commentary newsletter."""
    ctx.obj = App(root=root)


for module in (build, check, audience, dispatch, web):
    for command in module.COMMANDS:
        main.add_command(command)
