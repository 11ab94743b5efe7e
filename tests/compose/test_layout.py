"""The sample email in headless Chromium: no sideways scrolling on a phone, centred on desktop."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.compose import build_issue, write_build
from newsletter.compose.publication import Publication
from tests.compose.helpers import SAMPLE

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def email_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """email.html built from the sample, with the hero pointed at the local copy."""
    from tests.conftest import copy_sample

    root = copy_sample(tmp_path_factory.mktemp("layout") / "pub")
    pub = Publication.load(root)
    target = write_build(pub, build_issue(pub, SAMPLE))
    page = target / "email.html"
    page.write_text(page.read_text().replace(f"{pub.config.archive_url}{SAMPLE}/", ""))
    return page


def _open(browser, path: Path, width: int):
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(path.as_uri())
    page.wait_for_function("document.images[0] && document.images[0].complete")
    return page


def test_phone_width_has_no_horizontal_scrolling(browser, email_file: Path, artifacts: Path):
    page = _open(browser, email_file, 375)
    scroll, client = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert client == 375
    assert scroll <= client
    widest = page.evaluate(
        "Math.max(...[...document.querySelectorAll('body *')]"
        ".map(e => e.getBoundingClientRect().right))"
    )
    assert widest <= 375.5
    hero = page.evaluate("document.images[0].getBoundingClientRect().width")
    assert hero == pytest.approx(375, abs=1)
    page.screenshot(path=str(artifacts / "email-375.png"), full_page=True)
    page.close()


def test_desktop_width_centres_a_600px_column(browser, email_file: Path, artifacts: Path):
    page = _open(browser, email_file, 1024)
    box = page.evaluate(
        "(() => { const r = [...document.querySelectorAll('h2')][0].closest('table')"
        ".closest('div').getBoundingClientRect(); return [r.left, r.width]; })()"
    )
    left, width = box
    assert 580 <= width <= 620
    assert left == pytest.approx((1024 - width) / 2, abs=2)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024
    page.screenshot(path=str(artifacts / "email-1024.png"), full_page=False)
    page.close()
