"""Suppression endpoints for the fake SendGrid server (tests/fake_sendgrid.py).

`Suppressions.install(fake)` adds, with SendGrid's documented shapes and paging:
GET /v3/suppression/{bounces,spam_reports,unsubscribes,invalid_emails} (`limit` at most 500,
`offset`, `start_time`/`end_time` on `created`, newest first) and
GET /v3/asm/groups/{id}/suppressions (a list of addresses). Every query is recorded.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from tests.fake_sendgrid import Answer, FakeSendGrid, Request

LISTS = ("bounces", "spam_reports", "unsubscribes", "invalid_emails")
MAX_LIMIT = 500


def _int(request: Request, name: str, default: int | None) -> int | None:
    values = request.query.get(name)
    if not values:
        return default
    return int(values[0])


@dataclass
class Suppressions:
    """The account's suppression lists; tests fill them in."""

    lists: dict[str, list[dict]] = field(default_factory=lambda: {k: [] for k in LISTS})
    groups: dict[int, list[str]] = field(default_factory=dict)
    queries: list[tuple[str, dict[str, int | None]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, email: str, created: int, **extra: object) -> None:
        entry = {"created": created, "email": email, **extra}
        if kind == "bounces":
            entry.setdefault("reason", "550 5.1.1 The email account does not exist")
            entry.setdefault("status", "5.1.1")
        if kind == "invalid_emails":
            entry.setdefault("reason", "Mail domain mentioned in email address is unknown")
        if kind == "spam_reports":
            entry.setdefault("ip", "10.63.202.100")
        self.lists[kind].append(entry)

    def install(self, fake: FakeSendGrid) -> Suppressions:
        for kind in LISTS:
            fake.route("GET", f"/v3/suppression/{kind}",
                       lambda f, r, kind=kind: self._list(kind, r))
        for group_id in self.groups:
            fake.route("GET", f"/v3/asm/groups/{group_id}/suppressions",
                       lambda f, r, group_id=group_id: self._group(group_id, r))
        return self

    def _list(self, kind: str, request: Request) -> Answer:
        try:
            limit = _int(request, "limit", MAX_LIMIT) or MAX_LIMIT
            offset = _int(request, "offset", 0) or 0
            start = _int(request, "start_time", None)
            end = _int(request, "end_time", None)
        except ValueError:
            return Answer(400, {"errors": [{"field": "limit", "message": "must be an integer"}]})
        if limit > MAX_LIMIT or limit < 1 or offset < 0:
            return Answer(400, {"errors": [{"field": "limit",
                                            "message": f"limit must be 1..{MAX_LIMIT}"}]})
        with self.lock:
            self.queries.append((kind, {"limit": limit, "offset": offset, "start_time": start}))
            entries = [e for e in self.lists[kind]
                       if (start is None or e["created"] >= start)
                       and (end is None or e["created"] <= end)]
        entries.sort(key=lambda e: (-e["created"], e["email"]))
        return Answer(200, entries[offset : offset + limit])

    def _group(self, group_id: int, request: Request) -> Answer:
        with self.lock:
            self.queries.append((f"group_{group_id}", {}))
            return Answer(200, list(self.groups[group_id]))
