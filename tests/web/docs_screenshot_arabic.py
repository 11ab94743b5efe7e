"""Regenerate docs/img/arabic-edition.png: `python -m tests.web.docs_screenshot_arabic`.

Builds the sample's Arabic edition in a temporary copy of the sample publication and saves it as
headless Chromium shows it at phone (375 px) and desktop (600 px) widths, side by side.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from tests.conftest import CHROMIUM, CHROMIUM_ARGS, ROOT, copy_sample

OUT = ROOT / "docs" / "img" / "arabic-edition.png"
SLUG = "2026-11-24-ar"


def main() -> None:
    from playwright.sync_api import sync_playwright

    from newsletter.compose import build_issue
    from newsletter.compose.publication import Publication
    from newsletter.core.personalise import SAMPLE_RECIPIENT, personalise

    with tempfile.TemporaryDirectory() as tmp:
        pub = Publication.load(copy_sample(Path(tmp) / "pub"))
        build = build_issue(pub, SLUG)
        html, _ = personalise(build.html, build.text, SAMPLE_RECIPIENT, "https://x.example.org/u")
        hero = pub.root / "issues" / SLUG / "hero.jpg"
        html = html.replace(f"{pub.config.archive_url}{SLUG}/hero.jpg", hero.as_uri())
        page_file = Path(tmp) / "email.html"
        page_file.write_text(html, encoding="utf-8")
        side = (
            "<!doctype html><body style='margin:0;background:#c9d2dc;display:flex;gap:24px;"
            "align-items:flex-start;padding:16px'>"
            f"<iframe src='{page_file.as_uri()}' width='375' height='1100' style='border:0'>"
            "</iframe>"
            f"<iframe src='{page_file.as_uri()}' width='600' height='1100' style='border:0'>"
            "</iframe></body>"
        )
        shell = Path(tmp) / "side.html"
        shell.write_text(side, encoding="utf-8")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1031, "height": 1132})
            page.route(re.compile(r"^https?://"), lambda route: route.abort())
            page.goto(shell.as_uri(), wait_until="load")
            page.screenshot(path=OUT)
            browser.close()
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
