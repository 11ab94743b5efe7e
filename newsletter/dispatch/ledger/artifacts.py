"""Storing and reading a send's frozen message (newsletter.dispatch.artifact) in the ledger."""

from __future__ import annotations

from sqlalchemy import Connection, insert, select

from newsletter.core.errors import NewsletterError
from newsletter.db.ledger_tables import send_artifacts, sends
from newsletter.dispatch.artifact import FORMAT, Artifact
from newsletter.dispatch.ledger.store import LedgerStore, utcnow


def store_artifact(conn: Connection, send_id: int, artifact: Artifact) -> None:
    """Insert the artifact of `send_id` (in the caller's transaction)."""
    conn.execute(insert(send_artifacts).values(
        send_id=send_id, format=artifact.format, subject=artifact.subject, html=artifact.html,
        text=artifact.text, settings=artifact.settings(), content_hash=artifact.content_hash,
        source_hash=artifact.source_hash, created_at=utcnow()))


class Artifacts:
    """The frozen messages of sends."""

    def __init__(self, store: LedgerStore):
        self.store = store

    def load(self, send_id: int) -> Artifact | None:
        """The send's artifact; None for a send an earlier version started (it kept none).
        An artifact of a layout newer than this version knows is refused."""
        a = send_artifacts.c
        with self.store.engine.connect() as conn:
            row = conn.execute(select(sends.c.issue, a.format, a.subject, a.html, a.text,
                                      a.content_hash, a.settings, a.source_hash)
                               .select_from(send_artifacts.join(sends, sends.c.id == a.send_id))
                               .where(a.send_id == send_id)).first()
        if row is None:
            return None
        if row.format > FORMAT:
            raise NewsletterError(f"send #{send_id} was started by a newer version of newsletter "
                                  f"(message layout {row.format}); resume it with that version")
        return Artifact.thaw(row.issue, format=row.format, subject=row.subject, html=row.html,
                             text=row.text, content_hash=row.content_hash,
                             settings=row.settings, source_hash=row.source_hash)

    def families(self, slugs: tuple[str, ...]) -> tuple[str, ...]:
        """`slugs` and every slug the artifacts of their sends name as their issue family,
        followed until nothing new turns up."""
        known = tuple(dict.fromkeys(slugs))
        while True:
            with self.store.engine.connect() as conn:
                docs = conn.execute(select(send_artifacts.c.settings).select_from(
                    send_artifacts.join(sends, sends.c.id == send_artifacts.c.send_id))
                    .where(sends.c.issue.in_(known))).scalars().all()
            more = tuple(dict.fromkeys([*known, *(s for doc in docs
                                                  for s in doc.get("family") or ())]))
            if more == known:
                return known
            known = more

    def freeze(self, send_id: int, artifact: Artifact) -> None:
        """Store the artifact of a send that has none (one an earlier version started), under
        this run's lease."""
        def work(conn: Connection) -> None:
            store_artifact(conn, send_id, artifact)
            self.store.fence(conn, send_id)

        self.store.write(work)
