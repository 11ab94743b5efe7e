"""The outbox transport (the embedded default): one .eml file per recipient.

Messages land in `outbox/<slug>/<send-id>/`. Each is written to a hidden temporary file,
flushed to disk and renamed into place, so a file either is complete or does not exist; the
name depends only on the ledger row, so writing it again after a crash replaces, never doubles.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from newsletter.dispatch.mailing import Item, Mailing
from newsletter.dispatch.mime import MimeRenderer
from newsletter.dispatch.transports.base import BatchResult, Outcome, Transport
from newsletter.errors import FailedError

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


class OutboxTransport(Transport):
    name = "outbox"
    batch_size = 500

    def __init__(self, root: Path, *, fsync: bool = True):
        self.root = root
        self.fsync = fsync

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

    def send(self, items: Sequence[Item]) -> BatchResult:
        outcomes: list[Outcome] = []
        try:
            self._ensure_folder()
        except OSError as exc:
            reason = f"cannot create {self.folder}: {exc.strerror or exc}"
            return BatchResult.all(items, Outcome("retry", error=reason), stop=reason)
        for item in items:
            target = self.path_for(item)
            data = self.renderer.render(item.recipient, self.mailing.message_id(item.key))
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
                reason = f"cannot write {target}: {exc.strerror or exc}"
                rest = [Outcome("retry", error=reason)] * (len(items) - len(outcomes))
                return BatchResult(outcomes + rest, stop=reason)
            outcomes.append(Outcome("accepted", provider_id=target.name))
        if self.fsync:
            self._sync_folder()
        return BatchResult(outcomes)

    def _sync_folder(self) -> None:
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def resolve_unknown(self, items: Sequence[Item]) -> dict[int, bool]:
        """A file in place was accepted; a missing one was not (renames are atomic)."""
        return {item.key: self.path_for(item).exists() for item in items}

    def preview(self, item: Item) -> str:
        data = self.renderer.render(item.recipient, self.mailing.message_id(item.key))
        return data.decode("utf-8", "replace")
