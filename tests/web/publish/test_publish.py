"""Publishing to a local folder (atomic, idempotent) and to a real S3-compatible server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from newsletter.compose import build_issue
from newsletter.compose.publication import Publication
from newsletter.web.publish import (
    ASSET_CACHE,
    LONG_CACHE,
    SHORT_CACHE,
    FolderTarget,
    PublishError,
    S3Target,
    cache_control,
    content_type,
    issue_files,
    publish_folder,
    publish_issue,
)
from tests.conftest import need
from tests.web.publish.conftest import SLUG, free_port

READER = r"""
import os, sys, time
root, slug, until = sys.argv[1], sys.argv[2], time.monotonic() + float(sys.argv[3])
seen, bad = set(), []
while time.monotonic() < until:
    folder = os.path.join(root, slug)
    try:
        names = sorted(os.listdir(folder))
        page = open(os.path.join(folder, "index.html"), "rb").read().decode()
    except OSError as exc:
        bad.append(f"missing: {exc}")
        continue
    version = page.split(":")[0]
    seen.add(version)
    # each look sees one whole version (the folder and the page may be a swap apart)
    if names not in (["a.png", "index.html"], ["b.png", "index.html"]) or \
            page != f"{version}:" + "x" * 200000:
        bad.append(f"half: {names} {page[:10]!r} {len(page)}")
print(len(seen), len(bad), bad[:3])
"""


def _version(tag: str) -> dict[str, bytes]:
    return {"index.html": f"{tag}:".encode() + b"x" * 200000, f"{tag}.png": tag.encode() * 1000}


def test_folder_publish_is_atomic_for_a_concurrent_reader(tmp_path: Path) -> None:
    target = FolderTarget(tmp_path / "site")
    assert target.put_issue(SLUG, _version("a"))
    reader = subprocess.Popen([sys.executable, "-c", READER, str(target.root), SLUG, "4"],
                              stdout=subprocess.PIPE, text=True)
    swaps = 0
    while reader.poll() is None:
        for tag in ("b", "a"):
            assert target.put_issue(SLUG, _version(tag))
            swaps += 1
    seen, bad, examples = reader.stdout.read().split(" ", 2)
    assert bad == "0", examples
    assert int(seen) == 2 and swaps > 10  # the reader did see both versions come and go
    versions = sorted(p.name for p in (target.root / ".versions").iterdir())
    assert len(versions) <= 2  # the current version and the one before it


def test_folder_publish_is_idempotent_and_replaces_stale_files(tmp_path: Path) -> None:
    target = FolderTarget(tmp_path / "site")
    assert target.put_issue(SLUG, _version("a"))
    link = os.readlink(target.root / SLUG)
    stamp = (target.root / SLUG / "index.html").stat().st_mtime_ns
    assert not target.put_issue(SLUG, _version("a"))  # same content: nothing touched
    assert os.readlink(target.root / SLUG) == link
    assert (target.root / SLUG / "index.html").stat().st_mtime_ns == stamp
    assert target.put_issue(SLUG, _version("b"))
    assert sorted(os.listdir(target.root / SLUG)) == ["b.png", "index.html"]  # a.png is gone
    assert target.put_file("feed.xml", b"<feed/>") and not target.put_file("feed.xml", b"<feed/>")
    with pytest.raises(PublishError, match="unsafe"):
        target.put_issue("..", {"index.html": b""})
    with pytest.raises(PublishError, match="unsafe"):
        target.put_issue(SLUG, {"../escape.html": b""})


def test_a_folder_copied_by_hand_is_replaced(tmp_path: Path) -> None:
    target = FolderTarget(tmp_path / "site")
    (target.root / SLUG).mkdir(parents=True)
    (target.root / SLUG / "old.html").write_text("old")
    assert target.put_issue(SLUG, _version("a"))
    assert sorted(os.listdir(target.root / SLUG)) == ["a.png", "index.html"]


def test_publish_cli_and_archive_publish(publication: Path) -> None:
    pub = Publication.load(publication)
    build = build_issue(pub, SLUG)
    first = publish_issue(pub, build)
    assert first.issues == {SLUG: True}
    folder = publication / "published"
    assert (folder / SLUG / "index.html").read_bytes() == issue_files(pub, build)["index.html"]
    [hero] = [name for name in build.assets if name.startswith("hero-")]
    assert (folder / SLUG / hero).read_bytes() == build.assets[hero].read_bytes()
    from newsletter.web.archive import build_archive

    result = build_archive(pub)
    again = publish_folder(pub, result.folder)
    assert again.issues[SLUG] is False  # the archive's copy of the issue is the same page
    assert again.files == {"feed.xml": True, "index.html": True}
    assert (folder / "feed.xml").read_bytes() == (result.folder / "feed.xml").read_bytes()
    assert "nothing new" in publish_folder(pub, result.folder).summary()


def test_cache_and_type_policy() -> None:
    assert cache_control("2026-11-24/chart.3f9a1c2e77.webp") == LONG_CACHE
    assert cache_control("2026-11-24/hero.jpg") == ASSET_CACHE
    assert cache_control("2026-11-24/hero-279a37750a3e.jpg") == LONG_CACHE  # the build's names
    for name in ("index.html", "feed.xml", "2026-11-24/index.html", "2026-11-24/"):
        assert cache_control(name) == SHORT_CACHE
    assert content_type("feed.xml").startswith("application/atom+xml")
    assert content_type("a/index.html") == "text/html; charset=utf-8"
    assert content_type("x.webp") == "image/webp" and content_type("x.JPG") == "image/jpeg"


@pytest.fixture()
def s3_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """moto's standalone S3-compatible server: a separate process speaking S3 over HTTP."""
    server = Path(sys.executable).with_name("moto_server")
    need("moto[server]", server.exists())
    port = free_port()
    process = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            assert process.poll() is None and time.monotonic() < deadline, "no S3 server"
            time.sleep(0.2)
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.mark.slow
def test_s3_publish_uploads_with_types_and_caching_and_is_idempotent(
        publication: Path, s3_server: str) -> None:
    with open(publication / "newsletter.yaml", "a", encoding="utf-8") as handle:
        handle.write(f"publish: {{s3: {{bucket: news, prefix: archive, endpoint_url: "
                     f"'{s3_server}'}}}}\n")
    pub = Publication.load(publication)
    target = S3Target("news", "archive/", s3_server)
    client = target.client()
    client.create_bucket(Bucket="news")
    client.put_bucket_policy(Bucket="news", Policy=json.dumps({  # a public archive, as deployed
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::news/archive/*"}]}))
    build = build_issue(pub, SLUG)
    assert publish_issue(pub, build).issues == {SLUG: True}
    page = httpx.get(f"{s3_server}/news/archive/{SLUG}/index.html")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == SHORT_CACHE
    assert page.content == issue_files(pub, build)["index.html"]
    [name] = [name for name in build.assets if name.startswith("hero-")]
    hero = httpx.get(f"{s3_server}/news/archive/{SLUG}/{name}")
    assert hero.headers["content-type"] == "image/jpeg"
    assert hero.headers["cache-control"] == LONG_CACHE
    assert publish_issue(pub, build).issues == {SLUG: False}  # unchanged: nothing uploaded
    # a new image name: uploaded before the page, and the stale one removed after it
    renamed = publication / "issues" / SLUG / "hero.0123456789abcdef.jpg"
    shutil.copy(publication / "issues" / SLUG / "hero.jpg", renamed)
    build.assets = {renamed.name: renamed}
    assert publish_issue(pub, build).issues == {SLUG: True}
    keys = sorted(o["Key"] for o in target.client().list_objects_v2(Bucket="news")["Contents"])
    assert keys == [f"archive/{SLUG}/hero.0123456789abcdef.jpg", f"archive/{SLUG}/index.html"]
    hashed = httpx.get(f"{s3_server}/news/archive/{SLUG}/hero.0123456789abcdef.jpg")
    assert hashed.headers["cache-control"] == LONG_CACHE


def test_s3_errors_are_one_line(publication: Path, s3_server: str) -> None:
    target = S3Target("no-such-bucket", "", s3_server)
    with pytest.raises(PublishError, match="publishing 2026-11-24 to s3://no-such-bucket/"):
        target.put_issue(SLUG, {"index.html": b"x"})
