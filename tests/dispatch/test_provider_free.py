"""Dispatch asks a transport what it declares (newsletter.providers.base.Capabilities) and never
names a mail service: no service's name in its code, comments or messages, no comparison with a
transport's name, no probing of a transport's attributes. Nor does it read the environment
(newsletter.core.settings does)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import newsletter
from newsletter.core.settings import TRANSPORTS

DISPATCH = Path(newsletter.__file__).parent / "dispatch"
#: the mail services providers/ has modules for
SERVICES = re.compile(r"send\s*grid|postmark|mailgun|\bses\b|amazon", re.IGNORECASE)


def service_names(text: str) -> list[str]:
    """Lines of `text` that name a mail service."""
    return [f"{n}: {line.strip()}" for n, line in enumerate(text.splitlines(), start=1)
            if SERVICES.search(line)]


def transport_probes(source: str) -> list[str]:
    """What in `source` treats one transport unlike another: a string constant that is a
    transport's name, getattr/hasattr on something called a transport, a type: ignore of a
    missing attribute."""
    found = [f"{n}: {line.strip()}" for n, line in enumerate(source.splitlines(), start=1)
             if "ignore[attr-defined]" in line]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and node.value in TRANSPORTS:
            found.append(f"{node.lineno}: the string {node.value!r}")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr") and node.args
                and "transport" in ast.unparse(node.args[0]).lower()):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_rules_see_what_they_forbid() -> None:
    assert service_names("x = 1\n# cancelled at SendGrid\n") == ["2: # cancelled at SendGrid"]
    assert service_names("sendgrid.undo_window") and service_names("via Amazon SES")
    assert not service_names("scheduling = transport.capabilities.scheduling  # sessions")
    source = ('if chosen == "outbox":\n    pass\n'
              'builder = getattr(transport, "builder", None)\n'
              'plan.transport.cancel(b)  # type: ignore[attr-defined]\n')
    assert sorted(line.split(":")[0] for line in transport_probes(source)) == ["1", "3", "4"]
    assert transport_probes("if transport.capabilities.scheduling is None:\n    pass\n") == []


def test_dispatch_names_no_mail_service() -> None:
    found = {str(p.relative_to(DISPATCH)): lines for p in sorted(DISPATCH.rglob("*.py"))
             if (lines := service_names(p.read_text(encoding="utf-8")))}
    assert found == {}


def test_dispatch_asks_transports_what_they_declare() -> None:
    found = {str(p.relative_to(DISPATCH)): lines for p in sorted(DISPATCH.rglob("*.py"))
             if (lines := transport_probes(p.read_text(encoding="utf-8")))}
    assert found == {}


ENVIRONMENT = re.compile(r"\bos\.(environ|getenv|putenv|unsetenv)\b"
                         r"|\bfrom os import .*\b(environ|getenv|putenv|unsetenv)\b")


def environment_reads(text: str) -> list[str]:
    """Lines of `text` that read or change the process's environment."""
    return [f"{n}: {line.strip()}" for n, line in enumerate(text.splitlines(), start=1)
            if ENVIRONMENT.search(line)]


def test_the_environment_rule_sees_what_it_forbids() -> None:
    assert environment_reads('x = os.environ.get("A")\n') == ['1: x = os.environ.get("A")']
    assert environment_reads("from os import getenv\n") and environment_reads("os.putenv(a)")
    assert not environment_reads("knobs = process()  # the environment's knobs\n")
    assert not environment_reads("import os\nos.kill(pid, 0)\n")


def test_dispatch_reads_no_environment() -> None:
    found = {str(p.relative_to(DISPATCH)): lines for p in sorted(DISPATCH.rglob("*.py"))
             if (lines := environment_reads(p.read_text(encoding="utf-8")))}
    assert found == {}
