"""`newsletter serve` serves the published archive: types, caching, no listing, no escape;
the root page; /healthz."""

from __future__ import annotations

import socket
import warnings
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from newsletter.compose import build_issue
from newsletter.compose.publication import Publication
from newsletter.web.publish import ASSET_CACHE, LONG_CACHE, SHORT_CACHE, FolderTarget, publish_issue
from newsletter.web.site import redact_path
from tests.web.publish.conftest import SECRET, SLUG, Local

HASHED = "chart.0123456789abcdef.png"


def _client(pub: Publication, **kwargs):
    from newsletter.web.public import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    return TestClient(create_app(pub, **kwargs), follow_redirects=False)


@pytest.fixture()
def served(publication: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Publication:
    """The sample publication published to published/, plus a content-hashed image."""
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    for key in ("SENDGRID_WEBHOOK_PUBLIC_KEY", "NEWSLETTER_TRANSPORT"):
        monkeypatch.delenv(key, raising=False)
    pub = Publication.load(publication)
    build = build_issue(pub, SLUG)
    build.assets[HASHED] = publication / "issues" / SLUG / "hero.jpg"
    build.assets["hero.jpg"] = publication / "issues" / SLUG / "hero.jpg"  # a name with no hash
    publish_issue(pub, build)
    target = FolderTarget(publication / "published")
    target.put_file("feed.xml", b"<feed/>")
    target.put_file("index.html", b"<!doctype html><title>Archive</title>")
    (target.root / "drafts").mkdir()  # a folder without index.html
    (target.root / "drafts" / "note.txt").write_text("draft")
    (target.root / "escape").symlink_to(publication)  # a link out of the archive
    return pub


def test_archive_files_have_types_and_caching(served: Publication) -> None:
    with _client(served) as client:
        page = client.get(f"/archive/{SLUG}/")
        assert page.status_code == 200 and page.headers["content-type"] == \
            "text/html; charset=utf-8"
        assert page.headers["cache-control"] == SHORT_CACHE
        assert b"All issues" in page.content
        hero = client.get(f"/archive/{SLUG}/hero.jpg")
        assert hero.headers["content-type"] == "image/jpeg"
        assert hero.headers["cache-control"] == ASSET_CACHE
        hashed = client.get(f"/archive/{SLUG}/{HASHED}")
        assert hashed.headers["content-type"] == "image/png"
        assert hashed.headers["cache-control"] == LONG_CACHE
        feed = client.get("/archive/feed.xml")
        assert feed.headers["content-type"].startswith("application/atom+xml")
        assert feed.headers["cache-control"] == SHORT_CACHE
        index = client.get("/archive/")
        assert index.status_code == 200 and b"Archive" in index.content
        assert index.headers["cache-control"] == SHORT_CACHE
        assert client.head(f"/archive/{SLUG}/hero.jpg").status_code == 200
        assert client.get(f"/archive/{SLUG}").headers["location"] == f"/archive/{SLUG}/"
        assert client.get("/archive").headers["location"] == "/archive/"


def test_no_listing_no_dot_files_no_escape_in_process(served: Publication) -> None:
    with _client(served) as client:
        for path in ("/archive/drafts/", "/archive/.versions/", "/archive/escape/newsletter.yaml",
                     "/archive/escape/", f"/archive/{SLUG}/missing.png", "/archive//etc/passwd",
                     "/archive/%2e%2e/newsletter.yaml", "/archive/..%2fnewsletter.yaml",
                     "/archive/.%2e/newsletter.yaml", "/archive/a%5c..%5c..%5cnewsletter.yaml"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert b"Not Found" == response.content
        assert client.get("/archive/drafts/note.txt").status_code == 200  # files are served


def _raw_get(port: int, path: str) -> tuple[int, bytes]:
    """A request line sent as is (HTTP clients normalise '..' away before sending)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.slow
def test_path_escape_attempts_are_refused_by_the_real_server(local: Local) -> None:
    assert local.run("publish", SLUG).returncode == 0
    local.serve()
    secret_line = (local.root / "newsletter.yaml").read_bytes().splitlines()[1]
    for path in ("/archive/../newsletter.yaml", "/archive/../../../../etc/passwd",
                 f"/archive/{SLUG}/../../newsletter.yaml", "/archive/%2e%2e/newsletter.yaml",
                 "/archive/..%2Fnewsletter.yaml", "/archive/.versions/",
                 "/archive/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/archive/..\\newsletter.yaml"):
        status, body = _raw_get(local.port, path)
        assert status in (400, 404), path
        assert secret_line not in body and b"root:" not in body, path
    [hero] = (local.root / "published" / SLUG).glob("hero-*.jpg")
    status, body = _raw_get(local.port, f"/archive/{SLUG}/{hero.name}")
    assert status == 200 and body == hero.read_bytes()


def test_root_page_links_to_archive_and_sign_up(served: Publication) -> None:
    with _client(served) as client:
        home = client.get("/")
        assert home.status_code == 200
        assert 'href="/archive/"' in home.text and 'href="/subscribe"' in home.text
        assert client.get("/archive/").status_code == 200
        assert client.get("/subscribe").status_code == 200


def test_healthz_reports_its_parts(served: Publication, monkeypatch) -> None:
    with _client(served) as client:
        health = client.get("/healthz")
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "database": "ok", "secret": "set",
                                 "webhook_key": "missing"}
    monkeypatch.setenv("NEWSLETTER_TRANSPORT", "sendgrid")  # then the webhook key is needed
    with _client(Publication.load(served.root)) as client:
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json()["webhook_key"] == "missing"


@pytest.mark.postgres
def test_healthz_fails_while_the_database_is_down(served: Publication, postgres_url: str,
                                                  postgres_server: str) -> None:
    from newsletter.db import open_database

    engine = open_database(postgres_url)
    name = engine.url.database
    admin = create_engine(postgres_server.replace("postgresql://", "postgresql+psycopg://", 1),
                          isolation_level="AUTOCOMMIT")

    def connections(allowed: bool) -> None:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}'))
            if not allowed:
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = :name"), {"name": name})

    try:
        with _client(served, engine=engine) as client:
            assert client.get("/healthz").status_code == 200
            connections(False)
            down = client.get("/healthz")
            assert down.status_code == 503
            assert down.json()["database"] == "error" and down.json()["status"] == "unavailable"
            connections(True)
            assert client.get("/healthz").status_code == 200  # back once the database is
    finally:
        connections(True)
        engine.dispose()
        admin.dispose()


def test_access_log_paths_carry_no_tokens_or_addresses() -> None:
    token = "dW5zdWJzY3JpYmV8cmVhZGVyQGV4YW1wbGUub3JnfDA.zUncoVWhApQnk144rQWDNtLwUj8"
    assert redact_path(f"/unsubscribe/{token}") == "/unsubscribe/dW5zdW…"
    assert redact_path("/confirm/reader@example.org") == "/confirm/…"
    assert redact_path("/p/reader%40example.org/x") == "/p/…/x"
    assert redact_path("/archive/2026-11-24/hero.jpg", "/archive/") == \
        "/archive/2026-11-24/hero.jpg"
    assert redact_path("/subscribe") == "/subscribe"
