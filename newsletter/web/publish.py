"""Publish: put web copies and images where `archive_url` points, before the mail goes out.

Two targets, named by `publish:` in newsletter.yaml:

- a local folder (the default, `published/` in the publication) that `newsletter serve` or any
  web server reads. Each issue lives in `.versions/<slug>.<digest>/` and `<slug>` is a symlink
  to it, swapped with one atomic rename: a reader sees the old copy or the new one, never a
  half-copied folder. Top-level files (index, feeds) are each replaced atomically too.
- an S3-compatible bucket (boto3, credentials from the usual AWS_* environment variables).
  S3 has no folder rename, so an issue's images go up first and its page last; objects that
  did not change (same MD5) are not uploaded again, and stale ones are deleted afterwards.

Publishing the same content twice changes nothing (idempotent). `cache_control` and
`content_type` are the one place that says how a published file is served.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from newsletter.compose.publication import Publication
from newsletter.core.errors import FailedError

if TYPE_CHECKING:  # `serve` imports this module: the build (MJML, premailer) loads on use only
    from newsletter.compose import Build

#: chart.3f9a1c2e.webp, and the build's own image names: hero-279a37750a3e.jpg
HASHED_NAME = re.compile(r"(\.[0-9a-f]{8,64}|-[0-9a-f]{12,64})\.[A-Za-z0-9]+$")
LONG_CACHE = "public, max-age=31536000, immutable"  # content-hashed: the name changes with it
SHORT_CACHE = "public, max-age=300"  # pages, index and feeds: a re-publish shows in 5 minutes
ASSET_CACHE = "public, max-age=3600"  # images whose names carry no hash
PAGE = "index.html"
VERSIONS = ".versions"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".xml": "application/atom+xml; charset=utf-8",  # the archive's only XML files are feeds
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".svg": "image/svg+xml",
}

Content = bytes | Path  # a file's bytes, or a file to copy


def content_type(name: str) -> str:
    """The Content-Type a published file is served with."""
    suffix = Path(name).suffix.lower()
    if suffix in TYPES:
        return TYPES[suffix]
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def cache_control(name: str) -> str:
    """Long for content-hashed files, short for pages and feeds, an hour for other images."""
    base = name.rsplit("/", 1)[-1]
    if HASHED_NAME.search(base):
        return LONG_CACHE
    if base.endswith((".html", ".xml")) or not base:
        return SHORT_CACHE
    return ASSET_CACHE


def _read(content: Content) -> bytes:
    return content.read_bytes() if isinstance(content, Path) else content


def digest_of(files: Mapping[str, Content]) -> str:
    """One SHA-256 over every name and content, in name order."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(_read(files[name])).digest())
    return digest.hexdigest()


class PublishError(FailedError):
    """The target refused or could not be reached."""


class Target(Protocol):
    """Where published files go."""

    def describe(self) -> str: ...

    def put_issue(self, slug: str, files: Mapping[str, Content]) -> bool:
        """Replace the issue's folder by `files` at once; False when it was already so."""
        ...

    def put_file(self, name: str, data: bytes) -> bool:
        """Replace one top-level file (index, feed) at once; False when unchanged."""
        ...


@dataclass
class FolderTarget:
    """A local folder; each issue folder is a symlink swapped atomically to a new version."""

    root: Path

    def describe(self) -> str:
        return str(self.root)

    def put_issue(self, slug: str, files: Mapping[str, Content]) -> bool:
        _check_names(slug, files)
        versions = self.root / VERSIONS
        versions.mkdir(parents=True, exist_ok=True)
        name = f"{slug}.{digest_of(files)[:16]}"
        relative = f"{VERSIONS}/{name}"
        link = self.root / slug
        if link.is_symlink() and os.readlink(link) == relative and (versions / name).is_dir():
            return False
        if not (versions / name).is_dir():
            _write_folder(versions / name, files)
        previous = os.readlink(link).rsplit("/", 1)[-1] if link.is_symlink() else None
        swap = self.root / f".{slug}.link-{os.getpid()}"
        swap.unlink(missing_ok=True)
        swap.symlink_to(relative, target_is_directory=True)
        if link.is_dir() and not link.is_symlink():  # a plain folder copied there by hand
            link.rename(versions / f".{slug}.replaced-{os.getpid()}")
        os.replace(swap, link)  # the atomic step
        # keep the previous version: a reader that has just resolved the old link finishes
        for old in versions.iterdir():
            if old.name not in (name, previous) and re.fullmatch(
                    rf"\.?{re.escape(slug)}\.[0-9a-z-]+", old.name):
                shutil.rmtree(old, ignore_errors=True)
        return True

    def put_file(self, name: str, data: bytes) -> bool:
        _check_names("", {name: data})
        path = self.root / name
        if path.is_file() and path.read_bytes() == data:
            return False
        self.root.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=f".{name}.", dir=self.root)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
        return True


def _write_folder(target: Path, files: Mapping[str, Content]) -> None:
    """Write `files` into a staging folder beside `target`, then rename it into place."""
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    try:
        os.chmod(staging, 0o755)
        for name, content in files.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copyfile(content, path)
            else:
                path.write_bytes(content)
            os.chmod(path, 0o644)
        os.rename(staging, target)
    except FileExistsError:  # another publisher wrote the same version first
        shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if target.is_dir():  # rename onto a non-empty folder: the same version is there
            return
        raise PublishError(f"cannot write {target}: {exc.strerror or exc}") from None


def _check_names(slug: str, files: Mapping[str, Content]) -> None:
    for name in [slug, *files]:
        parts = name.split("/") if name else []
        if any(p in ("", ".", "..") or p.startswith(".") or "\\" in p for p in parts):
            raise PublishError(f"refusing to publish the unsafe name {name!r}")


@dataclass
class S3Target:
    """An S3-compatible bucket; an issue's page is uploaded after everything it shows."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None

    def describe(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"s3://{self.bucket}/{self.prefix}{where}"

    def client(self):
        try:
            import boto3
        except ImportError:
            raise PublishError("publishing to S3 needs boto3: pip install 'newsletter[s3]'") \
                from None
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region)

    def _existing(self, client, prefix: str) -> dict[str, str]:
        """key -> ETag (the MD5 of single-part uploads) under `prefix`."""
        found: dict[str, str] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                     Prefix=prefix):
            for item in page.get("Contents", []):
                found[item["Key"]] = item["ETag"].strip('"')
        return found

    def _put(self, client, key: str, name: str, data: bytes) -> None:
        client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type(name),
                          CacheControl=cache_control(name))

    def put_issue(self, slug: str, files: Mapping[str, Content]) -> bool:
        _check_names(slug, files)
        from botocore.exceptions import BotoCoreError, ClientError

        base = f"{self.prefix}{slug}/"
        try:
            client = self.client()
            existing = self._existing(client, base)
            changed = False
            # the page last: once it is visible, so is every image it shows
            for name in sorted(files, key=lambda n: (n == PAGE, n)):
                data = _read(files[name])
                if existing.get(base + name) == hashlib.md5(data).hexdigest():
                    continue
                self._put(client, base + name, name, data)
                changed = True
            stale = sorted(set(existing) - {base + name for name in files})
            if stale:
                client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": key} for key in stale], "Quiet": True})
                changed = True
            return changed
        except (BotoCoreError, ClientError) as exc:
            raise PublishError(f"publishing {slug} to {self.describe()} failed: {exc}") from None

    def put_file(self, name: str, data: bytes) -> bool:
        _check_names("", {name: data})
        from botocore.exceptions import BotoCoreError, ClientError

        key = self.prefix + name
        try:
            client = self.client()
            if self._existing(client, key).get(key) == hashlib.md5(data).hexdigest():
                return False
            self._put(client, key, name, data)
            return True
        except (BotoCoreError, ClientError) as exc:
            raise PublishError(f"publishing {name} to {self.describe()} failed: {exc}") from None


def target_for(pub: Publication) -> Target:
    """The target newsletter.yaml names (`publish: {s3: ...}`), else the local folder."""
    config = pub.config.publish
    if config.s3 is not None:
        s3 = config.s3
        return S3Target(s3.bucket, s3.prefix, s3.endpoint_url, s3.region)
    return FolderTarget(local_folder(pub))


def local_folder(pub: Publication) -> Path:
    """The local publish folder (what `newsletter serve` serves under archive_url)."""
    folder = Path(pub.config.publish.folder)
    return folder if folder.is_absolute() else pub.root / folder


@dataclass(frozen=True)
class Published:
    """What one publish did: the issue folders and top-level files, and which changed."""

    where: str
    issues: dict[str, bool]
    files: dict[str, bool]

    def summary(self) -> str:
        changed = [n for n, c in {**self.issues, **self.files}.items() if c]
        same = len(self.issues) + len(self.files) - len(changed)
        text = f"published to {self.where}: " + (", ".join(changed) if changed else "nothing new")
        return text + (f" ({same} unchanged)" if same and changed else "")


def issue_files(pub: Publication, build: Build) -> dict[str, Content]:
    """The files of an issue's folder: its web copy as archived, and its images."""
    from newsletter.web.archive import issue_page

    return {PAGE: issue_page(pub, build).encode("utf-8"), **build.assets}


def publish_issue(pub: Publication, build: Build, target: Target | None = None) -> Published:
    """Publish one issue's web copy and images (the index and feed: `archive --publish`)."""
    target = target or target_for(pub)
    changed = target.put_issue(build.slug, issue_files(pub, build))
    return Published(target.describe(), {build.slug: changed}, {})


def publish_folder(pub: Publication, folder: Path, target: Target | None = None) -> Published:
    """Publish a built archive folder: every issue folder first, then the top-level files."""
    target = target or target_for(pub)
    issues: dict[str, bool] = {}
    files: dict[str, bool] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            inside = {p.relative_to(entry).as_posix(): p for p in sorted(entry.rglob("*"))
                      if p.is_file()}
            issues[entry.name] = target.put_issue(entry.name, inside)
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and not entry.name.startswith("."):
            files[entry.name] = target.put_file(entry.name, entry.read_bytes())
    return Published(target.describe(), issues, files)
