"""The preview server over HTTP: pages, personalisation, local images, CSRF and host checks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine

from newsletter.audience import add_subscriber
from newsletter.db import open_database
from tests.web.conftest import SLUG, RunningServer


def page_and_token(client: httpx.Client) -> str:
    response = client.get("/")
    assert response.status_code == 200
    match = re.search(r'name="csrf" value="([^"]+)"', response.text)
    assert match, "the send-test form carries a CSRF token"
    return match.group(1)


def test_page_shows_headers_frames_and_checks(preview: RunningServer) -> None:
    with preview.client() as client:
        response = client.get("/")
    html = response.text
    assert "Grid queues, ransomware, Egypt&#39;s squeeze &amp; the tariff trap" in html
    assert "Example Institute &lt;newsletter@example.org&gt;" in html
    assert "Four of our scholars on what policymakers" in html  # preheader
    assert 'id="frame-phone"' in html and 'width="375"' in html
    assert 'id="frame-desktop"' in html and 'width="700"' in html
    assert 'id="checks"' in html
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_email_is_personalised_and_hero_served_locally(preview: RunningServer) -> None:
    processed = preview.live.good.build.images.get(preview.root / "issues" / SLUG / "hero.jpg")
    with preview.client() as client:
        html = client.get("/email.html").text
        text = client.get("/email.txt").text
        hero = client.get(f"/web/{processed.name}")
        web = client.get("/web/").text
    assert "Hello Sample," in html
    assert "%%" not in html and "%%" not in text
    assert f'src="/web/{processed.name}"' in html
    assert "news.example.org/archive/2026-11-24/" not in html
    assert hero.status_code == 200
    assert hero.content == processed.path.read_bytes()
    assert "Hello Sample" in text
    assert "The transition is stuck in the queue" in text
    assert "Unsubscribe" not in web  # the web copy has no personal links


def test_unknown_host_is_refused(preview: RunningServer) -> None:
    with preview.client() as client:
        response = client.get("/", headers={"Host": "evil.example:80"})
    assert response.status_code == 400


def test_send_test_refuses_cross_site_and_bad_tokens(preview: RunningServer) -> None:
    origin = preview.url
    with preview.client() as client:
        token = page_and_token(client)
        good = {"csrf": token, "to": "me@example.org", "transport": "outbox"}
        cross = client.post("/send-test", data=good, headers={"Origin": "https://evil.example"})
        no_origin = client.post("/send-test", data=good)
        bad_token = client.post(
            "/send-test", data=good | {"csrf": "0" * 64}, headers={"Origin": origin}
        )
        bad_address = client.post(
            "/send-test", data=good | {"to": "not-an-address"}, headers={"Origin": origin}
        )
        bad_transport = client.post(
            "/send-test", data=good | {"transport": "pigeon"}, headers={"Origin": origin}
        )
    with preview.client() as other:  # a second browser: its own session, so the token fails
        other.get("/")
        stolen = other.post("/send-test", data=good, headers={"Origin": origin})
    for response in (cross, no_origin, bad_token, stolen):
        assert response.status_code == 403, response.text
        assert response.json()["ok"] is False
    assert bad_address.status_code == 400
    assert "not a valid email address" in bad_address.json()["message"]
    assert bad_transport.status_code == 400


@pytest.mark.slow
def test_send_test_to_the_test_recipients(preview: RunningServer, tmp_path: Path) -> None:
    with preview.client() as client:
        token = page_and_token(client)
        response = client.post(
            "/send-test", data={"csrf": token, "to": ""}, headers={"Origin": preview.url}
        )
    assert response.status_code == 200, response.text
    assert response.json()["ok"] is True
    assert "editor@example.org via outbox" in response.json()["message"]
    sent = list((tmp_path / "outbox").rglob("*.eml"))
    assert len(sent) == 1 and b"<editor@example.org>" in sent[0].read_bytes()


def test_send_test_reports_a_transport_failure(
    preview: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMTP_URL", "smtp://127.0.0.1:1")  # nothing listens on port 1
    with preview.client() as client:
        token = page_and_token(client)
        response = client.post(
            "/send-test",
            data={"csrf": token, "to": "me@example.org", "transport": "smtp"},
            headers={"Origin": preview.url},
        )
    assert response.status_code in (400, 502)
    assert response.json()["ok"] is False and response.json()["message"]


def test_send_test_refuses_while_the_issue_is_broken(preview: RunningServer) -> None:
    manifest = preview.root / "issues" / SLUG / "issue.yaml"
    manifest.write_text(manifest.read_text().replace("subject:", "subjekt:"))
    assert preview.live.rebuild_now() is False
    with preview.client() as client:
        token = page_and_token(client)
        response = client.post(
            "/send-test", data={"csrf": token, "to": ""}, headers={"Origin": preview.url}
        )
    assert response.status_code == 409
    assert "does not build" in response.json()["message"]


def test_failed_rebuild_keeps_last_good_build(preview: RunningServer) -> None:
    live = preview.live
    first = live.good
    manifest = preview.root / "issues" / SLUG / "issue.yaml"
    manifest.write_text("subject: [unclosed\n")
    assert live.rebuild_now() is False
    assert live.good is first
    assert live.problems and live.problems[0].location.startswith(f"issues/{SLUG}/issue.yaml:")
    with preview.client() as client:
        parts = client.get("/api/parts").json()
        state = client.get("/api/state").json()
        email = client.get("/email.html").text
    assert re.search(rf"issues/{SLUG}/issue.yaml:\d+</code>", parts["problems"])
    assert "showing last good build" in parts["status"]
    assert state["ok"] is False and state["build"] == first.number
    assert "The transition is stuck in the queue" in email


def test_watch_filter_follows_issue_settings_and_template(preview: RunningServer) -> None:
    live, root = preview.live, preview.root
    paths = live.watch_paths()
    assert live.relevant(str(root / "issues" / SLUG / "pieces" / "energy.md"), paths)
    assert live.relevant(str(root / "newsletter.yaml"), paths)
    assert live.relevant(str(root / "templates" / "default" / "email.mjml.j2"), paths) == (
        (root / "templates" / "default").is_dir()
    )
    assert not live.relevant(str(root / "dist" / SLUG / "email.html"), paths)
    assert not live.relevant(str(root / "issues" / "other" / "issue.yaml"), paths)
    assert not live.relevant(str(root / "issues" / SLUG / "pieces" / ".energy.md.swp"), paths)


def add_people(url: str) -> None:
    engine = open_database(url)
    with engine.begin() as conn:
        add_subscriber(
            conn, "alice@example.com", name="Alice Liddell", attributes={"city": "Oxford"}
        )
        add_subscriber(conn, "bob@example.com", name="Bob Stone")
    engine.dispose()


def test_preview_as_a_subscriber(preview: RunningServer, database: str) -> None:
    add_people(database)
    with preview.client() as client:
        found = client.get("/api/recipients", params={"q": "ALI"}).json()
        everyone = client.get("/api/recipients").json()
        html = client.get("/email.html", params={"as": "alice@example.com"}).text
        text = client.get("/email.txt", params={"as": "alice@example.com"}).text
        parts = client.get("/api/parts", params={"as": "alice@example.com"}).json()
        unknown = client.get("/email.html", params={"as": "nobody@example.com"}).text
    assert [r["email"] for r in found["recipients"]] == ["alice@example.com"]
    assert {r["email"] for r in everyone["recipients"]} == {"alice@example.com", "bob@example.com"}
    assert "Hello Alice," in html and "Hello Alice," in text
    assert "Alice Liddell &lt;alice@example.com&gt;" in parts["inbox"]
    assert "Hello Sample," in unknown


def test_no_database_means_sample_only(preview: RunningServer, database: str) -> None:
    with preview.client() as client:
        response = client.get("/api/recipients", params={"q": "a"}).json()
    assert response == {"recipients": [], "error": ""}
    assert not Path(database.removeprefix("sqlite:///")).exists()  # the preview created nothing
    create_engine(database).dispose()


def test_cli_build_does_not_import_the_web_stack() -> None:
    code = (
        "import sys, newsletter.cli; "
        "print(sorted({'starlette', 'uvicorn', 'watchfiles'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_preview_reports_a_busy_port(publication: Path) -> None:
    import socket

    from click.testing import CliRunner

    from newsletter.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(
            main, ["-C", str(publication), "preview", SLUG, "--port", str(port)]
        )
    assert result.exit_code == 2
    assert f"port {port}" in result.output


@pytest.mark.parametrize("ref", ["missing-issue"])
def test_cli_preview_unknown_issue(publication: Path, ref: str) -> None:
    from click.testing import CliRunner

    from newsletter.cli import main

    result = CliRunner().invoke(main, ["-C", str(publication), "preview", ref])
    assert result.exit_code == 2
    assert "no issue 'missing-issue'" in result.output


def test_checks_panel_shows_check_findings_then_spam(preview: RunningServer) -> None:
    import shutil as sh
    import time

    from newsletter.checks import run_checks

    with preview.client() as client:
        assert "No problems found." in client.get("/api/parts").json()["checks"]
    manifest = preview.root / "issues" / SLUG / "issue.yaml"
    before = preview.live.good.number
    manifest.write_text(manifest.read_text() + "editor_note: an unknown key\n")
    wait_for_build_after(preview.live, before)
    snap = preview.live.good
    expected = run_checks(snap.pub, snap.build, spam=False)
    assert expected, "the unknown key is an advisory finding"
    with preview.client() as client:
        checks = client.get("/api/parts").json()["checks"]
        assert "not installed" not in checks
        assert expected[0].message.split(" (")[0].replace("'", "&#39;") in checks
        if sh.which("spamassassin"):
            deadline = time.monotonic() + 60
            while preview.live.good.spam != "done":
                assert time.monotonic() < deadline, "the SpamAssassin run never finished"
                time.sleep(0.05)
            assert "Includes the SpamAssassin score" in client.get("/api/parts").json()["checks"]


def wait_for_build_after(live, number: int, timeout: float = 20.0) -> None:
    """Wait (polling the state, bounded) until a build newer than `number` is current."""
    import time

    deadline = time.monotonic() + timeout
    while live.good.number <= number or not live.ok:
        assert time.monotonic() < deadline, f"no rebuild; problems: {live.problems}"
        time.sleep(0.05)


def test_settings_and_template_changes_rebuild(publication: Path, database: str) -> None:
    import shutil as sh

    from newsletter.compose.render import PACKAGED_TEMPLATES
    from newsletter.web.preview import create_app
    from tests.web.conftest import run_in_thread, stop

    sh.copytree(
        PACKAGED_TEMPLATES / "default", publication / "templates" / "default", dirs_exist_ok=True
    )
    app = create_app(publication, publication / "issues" / SLUG)
    url, server, thread = run_in_thread(app)
    live = app.state.live
    try:
        settings = publication / "newsletter.yaml"
        before = live.good.number
        settings.write_text(
            settings.read_text().replace("{name: Example Institute,", "{name: Acme Fellows,")
        )
        wait_for_build_after(live, before)
        with httpx.Client(base_url=url) as client:
            assert "Acme Fellows &lt;newsletter@example.org&gt;" in client.get("/").text

        template = publication / "templates" / "default" / "email.mjml.j2"
        before = live.good.number
        source = template.read_text().replace("{{ t.view_in_browser }}", "Read it online")
        template.write_text(source)
        wait_for_build_after(live, before)
        with httpx.Client(base_url=url) as client:
            assert "Read it online" in client.get("/email.html").text
    finally:
        stop(server, thread)


def _links(html: str) -> dict[str, list[str]]:
    """href and src values of a page, parsed with lxml."""
    import lxml.html

    doc = lxml.html.document_fromstring(html)
    return {"href": doc.xpath("//a/@href"), "src": doc.xpath("//img/@src"),
            "base": doc.xpath("//head/base/@target")}


def test_every_frame_is_personalised_and_relinked_in_one_pass(preview: RunningServer,
                                                               database: str) -> None:
    """The email, the web copy and another edition: personal links filled in (the preference
    page too), the issue's archive URLs served locally, links open in a new tab, once."""
    add_people(database)
    archive = preview.live.good.pub.config.archive_url
    with preview.client() as client:
        pages = {"email": client.get("/email.html", params={"as": "alice@example.com"}).text,
                 "dark": client.get("/email.html", params={"scheme": "dark"}).text,
                 "web": client.get("/web/").text,
                 "edition": client.get(f"/editions/{SLUG}-ar/email.html",
                                       params={"as": "alice@example.com"}).text}
    for name, html in pages.items():
        found = _links(html)
        assert "%%" not in html, name
        assert found["base"] == ["_blank"], name
        assert found["src"] and not any(s.startswith(archive) for s in found["src"]), name
    for name in ("email", "edition"):  # the personal links, the preference page's included
        hrefs = _links(pages[name])["href"]
        assert any("/preferences/" in h for h in hrefs), name
        assert any("/unsubscribe/" in h for h in hrefs), name
        assert "" not in hrefs, name
    assert all(s.startswith(f"/editions/{SLUG}-ar/") for s in _links(pages["edition"])["src"]
               if not s.startswith("http"))
    assert "Alice" in pages["edition"] and "Alice" in pages["email"]  # personalised as asked


def test_send_test_personalises_as_the_previewed_subscriber(preview: RunningServer,
                                                            database: str,
                                                            tmp_path: Path) -> None:
    add_people(database)
    with preview.client() as client:
        token = page_and_token(client)
        response = client.post("/send-test", headers={"Origin": preview.url}, data={
            "csrf": token, "to": "me@example.org", "transport": "outbox",
            "as": "alice@example.com"})
    assert response.status_code == 200, response.text
    assert "Personalised as Alice Liddell" in response.json()["message"]
    [sent] = list((tmp_path / "outbox").rglob("*.eml"))
    raw = sent.read_bytes()
    assert b"<me@example.org>" in raw and b"alice@example.com" not in raw  # to the tester only
    assert b"Hello Alice," in raw and b"Sample" not in raw
