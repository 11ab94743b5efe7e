"""Regenerate docs/img/preview*.png from a real preview run: `python -m tests.web.docs_screenshot`.

Runs the preview of the sample issue (a temporary copy of the sample publication, so nothing in
the repository changes) in headless Chromium and saves the page as editors see it, then the
email's first screens in light and dark mode (docs/img/email-light.png, email-dark.png).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from tests.conftest import CHROMIUM, CHROMIUM_ARGS, ROOT
from tests.web.conftest import SLUG, run_in_thread, stop

OUT = ROOT / "docs" / "img"


def main() -> None:
    from playwright.sync_api import expect, sync_playwright

    from newsletter.web.preview import create_app

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "pub"
        root.mkdir()
        shutil.copy(ROOT / "newsletter.yaml", root)
        shutil.copytree(ROOT / "issues", root / "issues")
        shutil.copytree(ROOT / "templates", root / "templates")
        os.environ["NEWSLETTER_OUTBOX"] = str(Path(tmp) / "outbox")
        os.environ["NEWSLETTER_TRANSPORT"] = "outbox"
        os.environ["NEWSLETTER_DATABASE_URL"] = f"sqlite:///{Path(tmp) / 'none.db'}"
        app = create_app(root, root / "issues" / SLUG)
        url, server, thread = run_in_thread(app)
        deadline = time.monotonic() + 60
        while app.state.live.good.spam == "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.goto(url + "/")
                expect(
                    page.frame_locator("#frame-desktop").locator("h2.headline").first
                ).to_be_visible()
                page.locator("#send-to").fill("editor@example.org")
                page.get_by_role("button", name="Send test").click()
                expect(page.locator("#send-result.ok")).to_be_visible(timeout=60_000)
                page.screenshot(path=OUT / "preview.png")
                for scheme in ("light", "dark"):
                    email = browser.new_page(
                        viewport={"width": 640, "height": 1500}, color_scheme=scheme
                    )
                    email.goto(url + "/email.html")
                    email.wait_for_function("[...document.images].every((i) => i.complete)")
                    email.locator("img.figure-img").scroll_into_view_if_needed()
                    email.evaluate("window.scrollTo(0, 0)")
                    email.screenshot(path=OUT / f"email-{scheme}.png")
                    email.close()
                manifest = root / "issues" / SLUG / "issue.yaml"
                manifest.write_text(manifest.read_text().replace("date: 2026-11-24", "date: soon"))
                expect(page.locator("#problems .problems")).to_be_visible(timeout=15_000)
                page.screenshot(
                    path=OUT / "preview-error.png",
                    clip={"x": 0, "y": 0, "width": 1600, "height": 520},
                )
                browser.close()
        finally:
            stop(server, thread)
    print(f"wrote preview.png, preview-error.png, email-light.png and email-dark.png in {OUT}")


if __name__ == "__main__":
    main()
