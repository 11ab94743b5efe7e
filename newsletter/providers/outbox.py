"""The outbox transport (the embedded default): one .eml file per recipient.

Messages land in `outbox/<slug>/<send-id>/`. Each is written to a hidden temporary file,
flushed to disk (fsync) and renamed into place, so a file either is complete or does not
exist; the name depends only on the ledger row, so writing it again after a crash replaces,
never doubles. Messages are rendered in order and written by a few threads (file system
calls release the GIL), which roughly doubles the rate on a journaling file system.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from newsletter.core.errors import FailedError
from newsletter.providers.base import BatchResult, Outcome, Transport
from newsletter.providers.mailing import Item, Mailing, Unsendable, on_the_wire
from newsletter.providers.mime import MimeRenderer

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def _unsendable(exc: Exception) -> str:
    """Why one recipient's message cannot be made, in words."""
    if isinstance(exc, Unsendable):
        return str(exc)
    return f"cannot make this recipient's message: {type(exc).__name__}: {exc}"


class OutboxTransport(Transport):
    name = "outbox"
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
            for stale in self.folder.glob(".*.eml.tmp"):  # half-written when a run was killed
                stale.unlink(missing_ok=True)
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
        local = _UNSAFE.sub("_", item.recipient.email)[:80]
        return self.folder / f"{item.key:08d}-{local}.eml"

    def _write(self, target: Path, data: bytes) -> str | None:
        """Write one file atomically; the error text, or None."""
        temp = target.with_name(f".{target.name}.tmp")
        try:
            with open(temp, "wb") as handle:
                handle.write(data)
                if self.fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(temp, target)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            return f"cannot write {target}: {exc.strerror or exc}"
        return None

    def send(self, items: Sequence[Item]) -> BatchResult:
        try:
            self._ensure_folder()
        except OSError as exc:
            reason = f"cannot create {self.folder}: {exc.strerror or exc}"
            return BatchResult.all(items, Outcome("retry", error=reason), stop=reason)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.writers, thread_name_prefix="outbox")
        targets = [self.path_for(item) for item in items]
        writes: list[Future[str | None] | Outcome] = []
        for item, target in zip(items, targets, strict=True):
            try:
                data = self.renderer.render(on_the_wire(item).recipient,
                                            self.mailing.message_id(item.key))
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
