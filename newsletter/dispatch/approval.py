"""Sign-off before a send: who approved which exact content of an issue.

With `approval: {required: true, approvers: 2}` in newsletter.yaml, `send` refuses an issue
until that many different people have approved its current content (`newsletter approve
ISSUE`, or the preview's Approve button). Dry runs and test sends are not held back.

The content is a hash of the issue's sources (issue.yaml, its pieces and local images) and of
what it renders to (subject, HTML and text parts, web copy). Any edit, to a word of a piece or
to the template, gives new content: earlier approvals stay on record but no longer count.
Approvals live in the database (`approvals`, migration 9): one per person (names compared
without case) and content, so two people approving at once both count, and one person
approving twice counts once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import hashlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from newsletter.core.errors import FailedError, NewsletterError
from newsletter.core.words import plural
from newsletter.db.tables import approvals

if TYPE_CHECKING:
    from newsletter.compose import Build
    from newsletter.compose.publication import Publication

MAX_NAME = 200
HASH_VERSION = b"newsletter approval content v1\0"


@dataclass(frozen=True)
class Approval:
    """One person's approval of one version of an issue."""

    issue: str
    content: str
    approver: str
    approved_at: dt.datetime


@dataclass(frozen=True)
class SignOff:
    """An issue's approvals measured against its current content."""

    slug: str
    content: str
    required: bool
    needed: int  # distinct approvers the settings ask for
    current: list[Approval]  # approvals of the current content, one per person
    earlier: list[Approval]  # of earlier content, by people who have not approved this one

    @property
    def missing(self) -> int:
        """Approvals still needed before `send` (0 when approval is not required)."""
        return max(0, self.needed - len(self.current)) if self.required else 0

    @property
    def approved(self) -> bool:
        """Approved by as many people as asked (by anyone, when approval is not required)."""
        return len(self.current) >= (self.needed if self.required else 1)

    def describe(self) -> str:
        """One line for `status`, `issues`, the preview and the refusal to send."""
        parts = []
        if self.current:
            count = f" ({len(self.current)} of {self.needed})" if self.required else ""
            parts.append(f"approved by {', '.join(a.approver for a in self.current)}{count}")
            if self.missing:
                parts.append(f"needs {plural(self.missing, 'more approval')}")
        elif self.required:
            parts.append(f"not approved (needs {plural(self.needed, 'approval')})")
        else:
            parts.append("not approved")
        if self.earlier:
            who = ", ".join(a.approver for a in self.earlier)
            parts.append(f"{who} approved an earlier version, before an edit (no longer "
                         "counts)")
        return "; ".join(parts)


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256(HASH_VERSION)
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def source_files(build: Build) -> list[Path]:
    """The files an issue is made of: issue.yaml, its pieces, its local images."""
    issue = build.issue
    files = [issue.folder / "issue.yaml", *(piece.path for piece in issue.pieces)]
    if issue.hero_file is not None:
        files.append(issue.hero_file)
    files += [image.path for piece in issue.pieces for image in piece.images
              if image.path is not None]
    return list(dict.fromkeys(files))


def content_of(pub: Publication, build: Build) -> str:
    """The hash approvals are given to: the issue's sources and its rendered parts.

    A build made for a one-topic segment (whose footer offers to stop that topic) is rebuilt
    without it, so the content is the same whatever segment a send goes to."""
    if build.topic is not None:
        from newsletter.compose import build_issue

        build = build_issue(pub, build.issue.folder)
    parts: list[bytes] = []
    for path in source_files(build):
        name = path.relative_to(build.issue.folder).as_posix()
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise NewsletterError(f"cannot read {path}: {exc.strerror or exc}") from None
        parts += [name.encode("utf-8"), hashlib.sha256(data).digest()]
    for text in (build.subject, build.html, build.text, build.web_html):
        parts.append(text.encode("utf-8"))
    return _digest(*parts)


def approver_name(name: str) -> str:
    """An approver's name as recorded: one line, spaces collapsed; NewsletterError if empty
    or too long."""
    cleaned = " ".join(name.split())
    if not cleaned:
        raise NewsletterError("give the approver's name (--as NAME)")
    if len(cleaned) > MAX_NAME or any(not c.isprintable() for c in cleaned):
        raise NewsletterError(f"an approver's name is one line of at most {MAX_NAME} "
                              "printable characters")
    return cleaned


def default_approver(root: Path) -> str:
    """Who is approving when no name is given: git's user.name for the publication, else the
    login name."""
    try:
        found = subprocess.run(["git", "config", "user.name"], cwd=root, capture_output=True,
                               text=True, timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        found = ""
    if found:
        return found
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return ""


@contextlib.contextmanager
def _engine(pub: Publication, given: Engine | None) -> Iterator[Engine]:
    """`given`, or the publication's database for the duration (then closed)."""
    if given is not None:
        yield given
        return
    from newsletter.db import database

    with database(pub.settings) as engine:
        yield engine


def approvals_of(engine: Engine, slug: str) -> list[Approval]:
    """Every approval ever given to `slug`, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(approvals).where(approvals.c.issue == slug)
                            .order_by(approvals.c.approved_at, approvals.c.id)).all()
    return [Approval(row.issue, row.content, row.approver, row.approved_at) for row in rows]


def sign_off(pub: Publication, build: Build, engine: Engine | None = None) -> SignOff:
    """The issue's approvals against its current content and the publication's settings."""
    content = content_of(pub, build)
    with _engine(pub, engine) as db:
        given = approvals_of(db, build.slug)
    current = [a for a in given if a.content == content]
    approvers = {_key(a.approver) for a in current}
    earlier: dict[str, Approval] = {}
    for approval in given:
        key = _key(approval.approver)
        if approval.content != content and key not in approvers:
            earlier[key] = approval  # the latest earlier approval of each person
    settings = pub.config.approval
    return SignOff(build.slug, content, settings.required, settings.approvers, current,
                   list(earlier.values()))


def _key(name: str) -> str:
    return " ".join(name.split()).casefold()


def approve(pub: Publication, build: Build, approver: str, *, check: bool = True,
            engine: Engine | None = None, now: dt.datetime | None = None) -> SignOff:
    """Record `approver`'s approval of the build's content (once per person and content) and
    return the sign-off as it stands. With `check`, content that fails the pre-send checks
    is refused (FailedError) and nothing is recorded."""
    name = approver_name(approver)
    if check:
        from newsletter.checks import require_passing

        require_passing(pub, build)
    content = content_of(pub, build)
    from newsletter.db import write_connection

    with _engine(pub, engine) as db:
        try:
            with write_connection(db) as conn, conn.begin():
                conn.execute(insert(approvals).values(
                    issue=build.slug, content=content, approver=name, approver_key=_key(name),
                    approved_at=now or dt.datetime.now(dt.UTC)))
        except IntegrityError:
            pass  # this person already approved this content
        return sign_off(pub, build, db)


def require_signoff(pub: Publication, build: Build, *, transport: str,
                    dry_run: bool = False) -> None:
    """The gate `send` passes once it knows its transport: a From address that can send
    through it, and (unless a dry run) the approvals newsletter.yaml asks for, of exactly
    this content. Raises FailedError naming what is missing."""
    from newsletter.checks.sender import sender_problem  # the checks load on first use

    problem = sender_problem(build.config, pub.settings, transport)
    if problem:
        raise FailedError(f"refusing to send {build.slug}: {problem}; set from: in "
                          "newsletter.yaml to an address at your own domain")
    if dry_run or not pub.config.approval.required:
        return
    state = sign_off(pub, build)
    if state.missing:
        raise FailedError(f"refusing to send {build.slug}: {state.describe()}. Approve its "
                          f"current content with `newsletter approve {build.slug}` (or the "
                          "preview's Approve button)")
