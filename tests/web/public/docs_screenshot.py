"""Regenerate docs/img/preferences*.png: `python -m tests.web.public.docs_screenshot`.

Serves a temporary copy of the sample publication with one subscriber (SQLite in a temporary
folder, so nothing in the repository changes) and photographs the preference page in headless
Chromium at desktop and phone widths.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tests.conftest import CHROMIUM, CHROMIUM_ARGS, ROOT, copy_sample
from tests.web.conftest import run_in_thread, stop

OUT = ROOT / "docs" / "img"
SECRET = "docs-screenshot-secret-not-for-sending"


def main() -> None:
    from playwright.sync_api import sync_playwright

    from newsletter.audience import add_subscriber
    from newsletter.compose.publication import Publication
    from newsletter.core.tokens import preferences_url
    from newsletter.db import open_database
    from newsletter.web.public import create_app

    with tempfile.TemporaryDirectory() as tmp:
        root = copy_sample(Path(tmp) / "pub")
        os.environ.update(NEWSLETTER_DATABASE_URL=f"sqlite:///{Path(tmp) / 'news.db'}",
                          NEWSLETTER_SECRET=SECRET, NEWSLETTER_TRANSPORT="outbox",
                          NEWSLETTER_OUTBOX=str(Path(tmp) / "outbox"))
        pub = Publication.load(root)
        engine = open_database(pub.settings)
        with engine.begin() as conn:
            add_subscriber(conn, "reader@example.org", name="Sample Reader",
                           tags=["energy", "middle-east"])
        engine.dispose()
        url, server, thread = run_in_thread(create_app(pub))
        link = preferences_url(pub.config.public_url, SECRET, "reader@example.org")
        link = link.replace(pub.config.public_url, url + "/") + "?stop=energy"
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                for name, viewport in (("preferences.png", {"width": 900, "height": 900}),
                                       ("preferences-phone.png", {"width": 375, "height": 812})):
                    page = browser.new_page(viewport=viewport)
                    page.goto(link)
                    page.screenshot(path=str(OUT / name), full_page=True)
                    print(f"wrote {OUT / name}")
                browser.close()
        finally:
            stop(server, thread)


if __name__ == "__main__":
    main()
