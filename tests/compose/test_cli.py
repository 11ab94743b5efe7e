"""The command line: every area's commands are reachable, and start-up stays light."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import newsletter.cli
from newsletter.cli import COMMAND_MODULES


def test_every_command_is_registered_under_its_module() -> None:
    found = {}
    for info in pkgutil.iter_modules(newsletter.cli.__path__):
        module = importlib.import_module(f"newsletter.cli.{info.name}")
        for command in getattr(module, "COMMANDS", []):
            found[command.name] = info.name
    assert found == {name: mod for name, mod in COMMAND_MODULES.items() if name in found}
    assert set(found) == set(COMMAND_MODULES)


def test_build_does_not_import_database_or_web_libraries() -> None:
    code = (
        "import sys; from newsletter.cli import main\n"
        "try:\n    main(['build', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('sqlalchemy', 'starlette', 'sendgrid', 'uvicorn') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
