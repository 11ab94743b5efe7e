"""Shared fixtures; area fixtures live in tests/<area>/conftest.py or tests/*_fixtures.py.

The suite runs in parallel (`make test`: pytest-xdist, two workers); docs/testing.md lists the
rules a test follows to stay isolated and fast.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

from tests import spam_memo
from tests.db_fixtures import *  # noqa: F403  (db_url, migrated_db_url, postgres_url, ...)

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_SLUG = "2026-11-24"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# Hypothesis: nothing in the repository, neither an example database (a failure prints its
# example and a @reproduce_failure blob instead) nor its caches (a folder per process).
# NEWSLETTER_HYPOTHESIS=thorough runs ten times the examples of every property test that sizes
# itself with `examples()`.
HYPOTHESIS_PROFILE = os.environ.get("NEWSLETTER_HYPOTHESIS", "suite")
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="newsletter-hypothesis-")
atexit.register(shutil.rmtree, _HYPOTHESIS_HOME, ignore_errors=True)
set_hypothesis_home_dir(_HYPOTHESIS_HOME)
settings.register_profile("suite", database=None, print_blob=True)
settings.register_profile("thorough", database=None, print_blob=True, max_examples=1000)
settings.load_profile(HYPOTHESIS_PROFILE)


def examples(count: int) -> int:
    """A property test's example count: `count` in the suite, ten times it when thorough."""
    return count * 10 if HYPOTHESIS_PROFILE == "thorough" else count


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the modules that hold `slow` tests first (each module's tests stay together and in
    their order): the xdist workers then finish on short tests, instead of one worker idling
    while the other runs a long test that happened to come last."""
    slow = {item.module for item in items
            if item.get_closest_marker("slow") and getattr(item, "module", None)}
    items.sort(key=lambda item: getattr(item, "module", None) not in slow)


def need(what: str, available: bool) -> None:
    """Skip when `what` is missing, but fail under CI (DEVELOPERS.md rule)."""
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required when CI is set")
    pytest.skip(f"{what} is not installed")


def copy_sample(root: Path) -> Path:
    """Copy the sample publication (settings, issues, subscribers, templates) to `root`."""
    root.mkdir(parents=True)
    shutil.copy(ROOT / "newsletter.yaml", root / "newsletter.yaml")
    for folder in ("issues", "subscribers", "templates"):
        if (ROOT / folder).is_dir():
            shutil.copytree(ROOT / folder, root / folder)
    return root


@pytest.fixture(scope="session", autouse=True)
def spamassassin_once_per_message(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The check gate's SpamAssassin runs once per distinct message (tests/spam_memo.py)."""
    saved = {k: os.environ.get(k) for k in ("PATH", spam_memo.CACHE_VARIABLE)}
    spam_memo.install(tmp_path_factory.mktemp("spamassassin"))
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session", autouse=True)
def no_dns_lookups() -> Iterator[None]:
    """Tests reach only 127.0.0.1: `newsletter check`'s DNS look-ups are off (and processes
    the tests start inherit that) unless a test points them at its own DNS server
    (tests/checks/test_dmarc.py)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEWSLETTER_DNS_SERVER", "off")
        yield


@pytest.fixture()
def publication(tmp_path: Path) -> Path:
    """A private copy of the sample publication."""
    return copy_sample(tmp_path / "pub")


@pytest.fixture(scope="session")
def sample_caches(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample's build caches (processed images, parsed style blocks, compiled templates)
    under `.newsletter/cache`, filled once per worker by building both sample editions."""
    from newsletter.compose import build_issue
    from newsletter.compose.publication import Publication

    root = copy_sample(tmp_path_factory.mktemp("warm") / "pub")
    pub = Publication.load(root)
    for slug in (SAMPLE_SLUG, f"{SAMPLE_SLUG}-ar"):
        build_issue(pub, slug)
    return root / ".newsletter" / "cache"


@pytest.fixture()
def warm_publication(publication: Path, sample_caches: Path) -> Path:
    """`publication` with the sample's build caches already filled, so its first build (in this
    process or a spawned one) skips processing the images: about 0.1 s of CPU per build saved.
    The output is the same either way; tests about the caches themselves use `publication`."""
    shutil.copytree(sample_caches, publication / ".newsletter" / "cache")
    return publication


@functools.cache
def sample_root() -> Path:
    """A copy of the sample publication shared by this process's tests, for tests that only
    read it (load, build in memory): building in the repository itself would write its caches
    there, and two workers would write them at once. Never edit it; use `publication`."""
    folder = Path(tempfile.mkdtemp(prefix="newsletter-sample-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return copy_sample(folder / "pub")


@functools.cache
def sample_build(slug: str = SAMPLE_SLUG):
    """(Publication, Build) of a sample issue, built once per process from `sample_root()`
    with none of the publication's environment settings (so the sample secret), whatever
    the first caller's environment. Both are shared: read them, never change them."""
    from newsletter.compose import build_issue
    from newsletter.compose.publication import Publication

    saved = {k: os.environ.pop(k) for k in list(os.environ)
             if k.startswith(("NEWSLETTER_", "SENDGRID_", "SMTP_"))}
    try:
        pub = Publication.load(sample_root())
        pub.settings  # noqa: B018 - read (and cached) now, in the clean environment
        return pub, build_issue(pub, slug)
    finally:
        os.environ.update(saved)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """A headless Chromium driven by Playwright (the system binary; never downloads one)."""
    need("Chromium", Path(CHROMIUM).exists())
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture()
def artifacts() -> Path:
    """Where tests save screenshots and other artefacts (not committed). The one place a test
    writes inside the repository: give each file a name of its own test (parameters included),
    so parallel workers never write the same file."""
    folder = ROOT / "tests" / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def addresses_in(records: Iterable[logging.LogRecord]) -> list[str]:
    """The log lines (with any traceback) among `records` that hold a sample address."""
    found = []
    for record in records:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        if "@example." in text.lower() or "%40example." in text.lower():
            found.append(text)
    return found


class LogGuard(logging.Handler):
    """Keeps every log record of one test (the `newsletter` loggers at every level)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def log_guard() -> Iterator[LogGuard]:
    """No log line holds an address (deploy.md promises logs without personal data): every
    test's log records are checked, whatever it exercises."""
    guard = LogGuard()
    root, ours = logging.getLogger(), logging.getLogger("newsletter")
    level = ours.level
    root.addHandler(guard)
    ours.setLevel(logging.DEBUG)
    try:
        yield guard
    finally:
        root.removeHandler(guard)
        ours.setLevel(level)
    leaks = addresses_in(guard.records)
    if leaks:
        pytest.fail("a log line holds an address: " + leaks[0][:500], pytrace=False)
