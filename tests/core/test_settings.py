"""One settings object: every environment variable declared once in newsletter.core.settings,
read the way its declaration says, listed in README.md's settings table; one require_secret."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from newsletter.core import settings as settings_module
from newsletter.core.errors import InputError
from newsletter.core.settings import (
    MIN_SECRET_LENGTH,
    MailgunEnv,
    PostmarkEnv,
    ProcessSettings,
    SesEnv,
    Settings,
    process,
    require_secret,
    variables,
)
from newsletter.dispatch.ledger.store import WritePolicy
from newsletter.dispatch.retry import RetryPolicy

README = Path(__file__).resolve().parents[2] / "README.md"
NEW = "the-secret-after-the-rotation-abcdefgh"
OLD = "the-secret-before-rotation-0123456789"

#: reader -> (a text it takes, the value that text gives)
SAMPLES = {
    "_text": (" some text ", " some text "),
    "_stripped": (" some-text ", "some-text"),
    "_url": ("http://127.0.0.1:9/api/", "http://127.0.0.1:9/api"),
    "_listed": ("a, b,,c", ("a", "b", "c")),
    "_count": ("7", 7),
    "_days": ("9", 9),
    "_seconds": ("2.5", 2.5),
    "_flag": ("Yes", True),
    "_path": ("/srv/letters", Path("/srv/letters")),
}


def declared() -> list[tuple[type, str, str, str]]:
    """(class, field, variable, reader name) of every declared variable."""
    found = []
    for kind in (Settings, PostmarkEnv, MailgunEnv, SesEnv, ProcessSettings):
        for f in fields(kind):
            if "env" in f.metadata:
                found.append((kind, f.name, f.metadata["env"], f.metadata["read"].__name__))
    return found


def readme_variables() -> list[str]:
    """The variables README.md's "Settings from the environment" table names, in order."""
    section = README.read_text(encoding="utf-8").split("## Settings from the environment", 1)[1]
    section = section.split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`",
                                                         row.split("|")[1])]


def test_readme_lists_exactly_the_declared_variables() -> None:
    listed = readme_variables()
    assert len(listed) == len(set(listed)), "a variable is listed twice"
    assert set(listed) == set(variables())
    assert len(variables()) == len(declared()), "a variable is declared twice"


def test_readme_states_each_numeric_default() -> None:
    """A row whose variable has a numeric default says that default."""
    section = README.read_text(encoding="utf-8").split("## Settings from the environment", 1)[1]
    rows = {name: line for line in section.splitlines() if line.startswith("| `")
            for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1])}
    for name, default in variables().items():
        if isinstance(default, int | float) and not isinstance(default, bool):
            assert f"default {default:g}" in rows[name], name


@pytest.mark.parametrize(("kind", "name", "variable", "reader"), declared(),
                         ids=[d[2] for d in declared()])
def test_each_variable_reaches_its_field(kind: type, name: str, variable: str,
                                         reader: str) -> None:
    text, value = SAMPLES[reader]
    given = settings_module.load(kind, {variable: text}, **(
        {"root": Path("/p")} if kind is Settings else {}))
    assert getattr(given, name) == value
    unset = settings_module.load(kind, {variable: "   "}, **(
        {"root": Path("/p")} if kind is Settings else {}))
    assert getattr(unset, name) == variables()[variable]  # blank is unset: the default


@pytest.mark.parametrize(("variable", "bad"), [
    ("NEWSLETTER_RETRY_ATTEMPTS", "0"), ("NEWSLETTER_RETRY_ATTEMPTS", "three"),
    ("NEWSLETTER_RETRY_BASE", "-1"), ("NEWSLETTER_LEDGER_PATIENCE", "soon"),
    ("NEWSLETTER_HEARTBEAT", "inf"), ("NEWSLETTER_DEBUG", "maybe"),
    ("NEWSLETTER_SENDGRID_BATCH", "1.5"), ("NEWSLETTER_EVENTS_KEEP_DAYS", "٣"),
    ("NEWSLETTER_POSTMARK_IN_FLIGHT", "-2"),
])
def test_a_bad_value_is_one_error_naming_its_variable(variable: str, bad: str) -> None:
    with pytest.raises(InputError) as caught:
        Settings.from_env(Path("/p"), {variable: bad})
    assert str(caught.value).startswith(variable)
    assert repr(bad) in str(caught.value)


def test_root_relative_defaults(tmp_path: Path) -> None:
    found = Settings.from_env(tmp_path, {})
    assert found.database_url == f"sqlite:///{tmp_path.resolve() / '.newsletter/newsletter.db'}"
    assert found.outbox == tmp_path.resolve() / "outbox"
    elsewhere = Settings.from_env(tmp_path, {"NEWSLETTER_OUTBOX": "/var/out"})
    assert elsewhere.outbox == Path("/var/out")


def test_policies_take_their_defaults_and_knobs_from_the_settings(monkeypatch) -> None:
    assert RetryPolicy() == RetryPolicy.from_env({})
    assert WritePolicy() == WritePolicy.from_env({})
    monkeypatch.setenv("NEWSLETTER_RETRY_ATTEMPTS", "2")
    monkeypatch.setenv("NEWSLETTER_LEDGER_PATIENCE", "0.5")
    assert RetryPolicy.from_env().attempts == 2  # read when asked, not at import
    assert WritePolicy.from_env().patience == 0.5
    assert process().retry_attempts == 2


def test_require_secret_is_the_one_check() -> None:
    settings = Settings.from_env(Path("/p"), {"NEWSLETTER_SECRET": NEW,
                                              "NEWSLETTER_SECRET_PREVIOUS": OLD})
    assert settings.require_secret() == [NEW, OLD]
    with pytest.raises(InputError, match="NEWSLETTER_SECRET is not set; it keys the list"):
        Settings.from_env(Path("/p"), {}).require_secret("keys the list")
    for secrets, variable in (([NEW[:MIN_SECRET_LENGTH - 1]], "NEWSLETTER_SECRET"),
                              ([NEW, "short"], "NEWSLETTER_SECRET_PREVIOUS"),
                              ([], "NEWSLETTER_SECRET"), (["", OLD], "NEWSLETTER_SECRET")):
        with pytest.raises(InputError) as caught:
            require_secret(secrets)
        assert str(caught.value).startswith(variable), secrets


def test_no_other_module_says_a_secret_is_missing() -> None:
    """The "NEWSLETTER_SECRET is not set" message has one home."""
    package = Path(settings_module.__file__).resolve().parents[1]
    saying = [str(p.relative_to(package)) for p in package.rglob("*.py")
              if "NEWSLETTER_SECRET is not set" in p.read_text(encoding="utf-8")]
    assert saying == ["core/settings.py"]
