"""Shared fixtures; area fixtures live in tests/<area>/conftest.py or tests/*_fixtures.py."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.db_fixtures import *  # noqa: F403  (db_url, postgres_url, postgres_server)

# Tests reach only 127.0.0.1: `newsletter check`'s DNS look-ups are off unless a test points
# them at its own DNS server (tests/checks/test_dmarc.py). Set here, so processes the tests
# start inherit it.
os.environ["NEWSLETTER_DNS_SERVER"] = "off"

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


@pytest.fixture()
def publication(tmp_path: Path) -> Path:
    """A private copy of the sample publication."""
    return copy_sample(tmp_path / "pub")


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
    """Where tests save screenshots and other artefacts (not committed)."""
    folder = ROOT / "tests" / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
