"""The send ledger: who a send is for, what it sends and what became of each message, in the
database (SQLite or PostgreSQL).

One `Ledger` holds a `LedgerStore` (the engine, this process's lease tokens, writes that wait
out other writers: store.py) and its parts, one idea each:

- `sends` (sends.py): creating a send (snapshot and artifact in one transaction), exclusivity
  per issue, leases with fencing tokens, release and cancel;
- `recipients` (recipients.py): the recipient rows: reading them in batches, the hand-over
  (consent.py drops who may no longer get it), recording outcomes, settling unknown ones;
- `artifacts` (artifacts.py): each send's frozen message;
- `scheduled` (scheduled.py): the provider's batch ids of scheduled (undo-window) sends;
- `pauses` (pauses.py): the reputation guard's pauses of sends, and their resumes;
- reached.py: the one answer to "has this person been reached by this issue family?".
"""

from __future__ import annotations

from sqlalchemy import Engine

from newsletter.dispatch.ledger.artifacts import Artifacts
from newsletter.dispatch.ledger.consent import ConsentCheck
from newsletter.dispatch.ledger.pauses import Pause, Pauses, SendPaused
from newsletter.dispatch.ledger.recipients import HandOver, RecipientRow, Recipients
from newsletter.dispatch.ledger.scheduled import RunBatch, Scheduled
from newsletter.dispatch.ledger.sends import (
    HEARTBEAT_EVERY,
    SendRow,
    Sends,
    is_alive,
    process_owner,
)
from newsletter.dispatch.ledger.store import (
    LeaseLost,
    LedgerStore,
    LedgerUnavailable,
    SendBusy,
    WritePolicy,
)

__all__ = [
    "HEARTBEAT_EVERY",
    "ConsentCheck",
    "HandOver",
    "LeaseLost",
    "Ledger",
    "LedgerUnavailable",
    "Pause",
    "RecipientRow",
    "RunBatch",
    "SendBusy",
    "SendPaused",
    "SendRow",
    "WritePolicy",
    "is_alive",
    "process_owner",
]


class Ledger:
    """The ledger over one engine: its parts share one store (and so the lease tokens)."""

    def __init__(self, engine: Engine, policy: WritePolicy | None = None):
        self.store = LedgerStore(engine, policy)
        self.sends = Sends(self.store)
        self.recipients = Recipients(self.store)
        self.artifacts = Artifacts(self.store)
        self.scheduled = Scheduled(self.store)
        self.pauses = Pauses(self.store)

    @property
    def engine(self) -> Engine:
        return self.store.engine
