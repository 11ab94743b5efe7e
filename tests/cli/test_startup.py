"""Start-up of the command line: `--help` of every command loads only the command line itself,
its text is what the eagerly built group would print, and running a command loads only what it
uses. Timings are in bench/startup.py; these tests check which modules are imported."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from newsletter.cli import COMMAND_MODULES, COMMAND_TABLE, main
from tests.conftest import SAMPLE_SLUG

#: Third-party packages no help may import (model building, database, templating, HTML, web,
#: providers, images, Markdown, YAML and rich's console).
HEAVY = ("pydantic", "pydantic_core", "sqlalchemy", "jinja2", "premailer", "cssutils", "lxml",
         "mjml", "starlette", "uvicorn", "watchfiles", "sendgrid", "babel", "PIL",
         "email_validator", "markdown_it", "yaml", "rich", "requests", "httpx", "psycopg")

#: Runs the command line in a fresh interpreter, then prints every module it imported.
PROBE = """
import json, sys
from newsletter.cli import main
try:
    main(sys.argv[1:], prog_name="newsletter")
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("\\nPROBE " + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def probe(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, set[str]]:
    """(exit code, output, imported module names) of `newsletter ARGS` in a new process."""
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                          env=env, check=True)
    output, _, last = done.stdout.rpartition("\nPROBE ")
    found = json.loads(last)
    return found["code"], output + done.stderr, set(found["modules"])


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


def help_paths() -> list[tuple[str, ...]]:
    """Every command and subcommand, walked from the click group (and `send cancel`)."""
    ctx = click.Context(main, info_name="newsletter")
    found: list[tuple[str, ...]] = [()]
    for name in main.list_commands(ctx):
        found.append((name,))
        command = main.get_command(ctx, name)
        if isinstance(command, click.Group):
            found += [(name, sub) for sub in command.list_commands(ctx)]
    return [*found, ("send", "cancel")]


def eager_group() -> click.Group:
    """The group as it would be without lazy loading: every command module imported, every
    command attached, the same options and help."""
    commands = [command for module in sorted(set(COMMAND_MODULES.values()))
                for command in importlib.import_module(f"newsletter.cli.{module}").COMMANDS]
    return click.Group(name=main.name, commands=commands, params=main.params,
                       callback=main.callback, help=main.help,
                       context_settings=main.context_settings)


def test_the_walk_finds_every_command_and_subcommand() -> None:
    paths = help_paths()
    assert {p[0] for p in paths if p} == set(COMMAND_TABLE)
    assert ("subscribers", "import") in paths and ("suppressions", "sync") in paths
    assert len(paths) > len(COMMAND_TABLE) + 5


@pytest.mark.parametrize("path", help_paths(), ids=lambda p: " ".join(p) or "newsletter")
def test_help_imports_only_the_command_line(path: tuple[str, ...]) -> None:
    code, output, modules = probe(*path, "--help")
    assert code == 0, output
    assert "Usage: newsletter" in output and "--help" in output
    assert heavy_in(modules) == []
    own = {m for m in modules if m == "newsletter" or m.startswith("newsletter.")}
    allowed = {"newsletter", "newsletter.core", "newsletter.core.errors", "newsletter.cli",
               "newsletter.cli.common",
               "newsletter.core.settings"}  # NEWSLETTER_DEBUG's home (the standard library only)
    if path:  # the module that defines the command, and no other
        allowed.add(f"newsletter.cli.{COMMAND_MODULES[path[0]]}")
    assert own <= allowed, sorted(own - allowed)


def test_group_help_imports_no_command_module() -> None:
    code, output, modules = probe("--help")
    assert code == 0
    assert not {f"newsletter.cli.{m}" for m in COMMAND_MODULES.values()} & modules
    for name in COMMAND_TABLE:  # yet it lists every command
        assert f"\n  {name} " in output


@pytest.mark.parametrize("width", [40, 60, 80, 120, 250])
def test_help_text_is_what_the_eager_group_prints(width: int) -> None:
    """Every help, at several terminal widths (where click shortens the command list's help
    differently), is byte for byte what the group with every command attached prints."""
    eager = eager_group()
    runner = CliRunner()
    for path in help_paths():
        args = [*path, "--help"]
        lazy = runner.invoke(main, args, prog_name="newsletter", terminal_width=width)
        reference = runner.invoke(eager, args, prog_name="newsletter", terminal_width=width)
        assert lazy.exit_code == reference.exit_code == 0, (path, lazy.output)
        assert lazy.output == reference.output, path


def test_the_table_matches_the_commands() -> None:
    """COMMAND_TABLE names each command's module and the first sentence of its help."""
    eager = eager_group()
    assert set(eager.commands) == set(COMMAND_TABLE)
    for name, (module, sentence) in COMMAND_TABLE.items():
        command = eager.commands[name]
        assert command.callback is not None and command.callback.__module__ == (
            f"newsletter.cli.{module}")
        assert command.get_short_help_str(10_000) == sentence


def test_build_imports_no_database_web_or_provider_library(publication: Path) -> None:
    code, output, modules = probe("-C", str(publication), "build", SAMPLE_SLUG)
    assert code == 0, output
    assert f"built {SAMPLE_SLUG}" in output
    assert (publication / "dist" / SAMPLE_SLUG / "email.html").is_file()
    unused = ("sqlalchemy", "starlette", "uvicorn", "watchfiles", "sendgrid", "psycopg",
              "rich")  # rich too: build prints plain lines (and warnings, which it has none)
    assert sorted(m for m in modules if m.split(".")[0] in unused) == []
    assert not any(m.startswith(("newsletter.db", "newsletter.dispatch", "newsletter.web",
                                 "newsletter.providers")) for m in modules)


@pytest.mark.slow
def test_subscribers_list_imports_no_build_or_web_library(publication: Path) -> None:
    env = {**os.environ,
           "NEWSLETTER_DATABASE_URL": f"sqlite:///{publication / 'subscribers.db'}"}
    code, output, modules = probe("-C", str(publication), "subscribers", "add",
                                  "reader@example.org", env=env)
    assert code == 0, output
    code, output, modules = probe("-C", str(publication), "subscribers", "list", env=env)
    assert code == 0, output
    assert "reader@example.org" in output and "1 subscribers" in output
    assert "sqlalchemy" in modules
    unused = ("jinja2", "premailer", "mjml", "lxml", "markdown_it", "PIL", "starlette",
              "uvicorn", "sendgrid")
    assert sorted(m for m in modules if m.split(".")[0] in unused) == []


@pytest.mark.slow
def test_status_and_send_cancel_import_no_build_library(publication: Path) -> None:
    """Reading the ledger needs the database, not the build stack (templates, CSS, HTML)."""
    env = {**os.environ,
           "NEWSLETTER_DATABASE_URL": f"sqlite:///{publication / 'status.db'}"}
    code, output, modules = probe("-C", str(publication), "status", SAMPLE_SLUG, env=env)
    assert code == 0, output
    assert f"no sends of {SAMPLE_SLUG} yet" in output
    assert "sqlalchemy" in modules
    code, output, cancel_modules = probe("-C", str(publication), "send", "cancel", SAMPLE_SLUG,
                                         "--yes", env=env)
    assert code != 0, output  # nothing to cancel: said in one line
    unused = ("jinja2", "premailer", "cssutils", "mjml", "lxml", "markdown_it", "PIL", "babel",
              "starlette", "uvicorn")
    assert sorted(m for m in modules | cancel_modules if m.split(".")[0] in unused) == []
