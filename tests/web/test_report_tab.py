"""The preview's Report tab shows dist/<slug>/report.html once `newsletter report` wrote it."""

from __future__ import annotations

from tests.web.conftest import SLUG, RunningServer


def test_report_tab_serves_the_written_report(preview: RunningServer) -> None:
    with preview.client() as client:
        page = client.get("/").text
        assert 'id="tab-report"' in page and 'data-src="/report.html"' in page
        missing = client.get("/report.html")
        assert missing.status_code == 200 and f"newsletter report {SLUG}" in missing.text
        target = preview.root / "dist" / SLUG / "report.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("<!doctype html><title>r</title><svg id='bars'></svg>")
        shown = client.get("/report.html")
    assert shown.status_code == 200 and "<svg id='bars'>" in shown.text
