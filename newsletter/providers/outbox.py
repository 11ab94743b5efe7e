"""The outbox transport (the embedded default): one .eml file per recipient.

Messages land in `outbox/<slug>/<send-id>/`. Each is written to a hidden temporary file of its
own (unique per writer, so processes writing into one folder at once, such as `serve` workers
sending confirmations, never touch each other's), flushed to disk (fsync) and renamed into
place, so a file either is complete or does not exist; the name depends only on the ledger row,
so writing it again after a crash replaces, never doubles. A temporary file's name carries its
writer's process id; files left by a writer that was killed are removed by the next writer of
the folder (the process is gone), and any older than STALE_TEMP_S (a process id taken again).
Messages are rendered in order and written by a few threads (file system calls release the
GIL), which roughly doubles the rate on a journaling file system.

`delete_messages` removes every message to one address (erasure: newsletter.events.forget).
"""

from __future__ import annotations

import email.parser
import email.policy
import os
import re
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from newsletter.core.errors import FailedError
from newsletter.providers.base import (
    BatchResult,
    Capabilities,
    Outcome,
    OutcomeSink,
    Request,
    Transport,
)
from newsletter.providers.mailing import Item, Mailing, Unsendable
from newsletter.providers.mime import MimeRenderer

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
TEMP_SUFFIX = ".eml.tmp"
STALE_TEMP_S = 3600  # a write takes milliseconds; an hour-old temporary file is a dead writer's


def file_label(address: str) -> str:
    """The part of a message's file name that comes from its recipient's address."""
    return _UNSAFE.sub("_", address)[:80]


def _unsendable(exc: Exception) -> str:
    """Why one recipient's message cannot be made, in words."""
    if isinstance(exc, Unsendable):
        return str(exc)
    return f"cannot make this recipient's message: {type(exc).__name__}: {exc}"


class OutboxTransport(Transport):
    name = "outbox"
    label = "outbox"
    capabilities = Capabilities(settles_unknown="the outbox shows whether each message was "
                                                "written")
    batch_size = 500

    def __init__(self, root: Path, *, fsync: bool = True, writers: int = 4):
        self.root = root
        self.where = str(root)  # until open() names the send's own folder
        self.fsync = fsync
        self.writers = writers
        self._pool: ThreadPoolExecutor | None = None

    def open(self, mailing: Mailing) -> None:
        super().open(mailing)
        self.renderer = MimeRenderer(mailing)
        self.folder = self.root / mailing.slug / mailing.send_ref
        self.where = str(self.folder)
        self._made = False

    def _ensure_folder(self) -> None:
        if not self._made:
            self.folder.mkdir(parents=True, exist_ok=True)
            _remove_stale(self.folder)
            self._made = True

    def preflight(self) -> None:
        """The outbox root must be a folder we can write (it is created when missing)."""
        self.where = str(self.root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FailedError(f"cannot create outbox folder {self.root}: "
                              f"{exc.strerror or exc}") from None
        if not os.access(self.root, os.W_OK):
            raise FailedError(f"cannot write to outbox folder {self.root}")

    def path_for(self, item: Item) -> Path:
        return self.folder / f"{item.key:08d}-{file_label(item.recipient.email)}.eml"

    def _write(self, target: Path, data: bytes) -> str | None:
        """Write one file atomically through a temporary file of this writer's own; the error
        text (naming the file by its send folder only: file names hold addresses), or None."""
        temp = None
        try:
            fd, temp = tempfile.mkstemp(prefix=f".{os.getpid()}-", suffix=TEMP_SUFFIX,
                                        dir=target.parent)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                if self.fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(temp, target)
        except OSError as exc:
            if temp is not None:
                Path(temp).unlink(missing_ok=True)
            return f"cannot write a message into {target.parent}: {exc.strerror or exc}"
        return None

    def post(self, items: Sequence[Item], request: Request,
             tell: OutcomeSink | None = None) -> BatchResult:
        """Render each message in order and write it (a few threads write at once); a
        message that cannot be made fails alone, a folder that cannot be written stops."""
        try:
            self._ensure_folder()
        except OSError as exc:
            reason = f"cannot create {self.folder}: {exc.strerror or exc}"
            return BatchResult.all(items, Outcome("retry", error=reason), stop=reason)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.writers, thread_name_prefix="outbox")
        mailing = self.mailing
        assert mailing is not None
        targets = [self.path_for(item) for item in items]
        writes: list[Future[str | None] | Outcome] = []
        for item, target in zip(items, targets, strict=True):
            try:
                data = self.renderer.render(item.recipient, mailing.message_id(item.key))
            except Exception as exc:  # noqa: BLE001 - one recipient's data, that one's outcome
                writes.append(Outcome("failed", error=_unsendable(exc)))
                continue
            writes.append(self._pool.submit(self._write, target, data))
        outcomes, stop = [], None
        for write, target in zip(writes, targets, strict=True):
            if isinstance(write, Outcome):
                outcomes.append(write)
                continue
            error = write.result()
            stop = stop or error
            outcomes.append(Outcome("retry", error=error) if error else
                            Outcome("accepted", provider_id=target.name))
        if self.fsync:
            self._sync_folder()
        return BatchResult(outcomes, stop=stop)

    def _sync_folder(self) -> None:
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def resolve_unknown(self, items: Sequence[Item]) -> dict[int, bool]:
        """A file in place was accepted; a missing one was not (renames are atomic)."""
        return {item.key: self.path_for(item).exists() for item in items}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def preview(self, item: Item) -> str:
        data = self.renderer.render(item.recipient, self.mailing.message_id(item.key))
        return data.decode("utf-8", "replace")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove_stale(folder: Path, now: float | None = None) -> None:
    """Delete the temporary files of writers that are gone (killed mid-write), and any older
    than STALE_TEMP_S; a live writer's files are left alone."""
    cutoff = (now or time.time()) - STALE_TEMP_S
    for temp in folder.glob(f".*{TEMP_SUFFIX}"):
        pid = temp.name[1:].partition("-")[0]
        try:
            if (pid.isdigit() and not _alive(int(pid))) or temp.stat().st_mtime < cutoff:
                temp.unlink(missing_ok=True)
        except OSError:
            continue


def _recipients(path: Path) -> set[str]:
    """The lower-cased addresses a message file is sent to (its To header)."""
    with path.open("rb") as handle:
        headers = email.parser.BytesHeaderParser(policy=email.policy.default).parse(handle)
    found: set[str] = set()
    for header in headers.get_all("To", []):
        found.update(a.addr_spec.lower() for a in getattr(header, "addresses", ()))
    return found


def delete_messages(root: Path, spellings: Iterable[str]) -> int:
    """Delete every message file under the outbox `root` sent to the address written in any
    of `spellings` (lower-case): files are picked by name, then confirmed by their To header.
    Returns how many were deleted."""
    keys = {s.lower() for s in spellings}
    labels = {file_label(k) for k in keys}
    if not root.is_dir():
        return 0
    deleted = 0
    for path in root.rglob("*.eml"):
        label = path.stem.partition("-")[2].lower()
        if label not in labels:
            continue
        try:
            if _recipients(path) & keys:
                path.unlink()
                deleted += 1
        except (OSError, ValueError):
            continue
    return deleted
