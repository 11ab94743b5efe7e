"""Suppression endpoints for the fake SendGrid server (tests/fake_sendgrid.py).

`Suppressions.install(fake)` adds, with SendGrid's documented shapes and paging:
GET /v3/suppression/{bounces,spam_reports,unsubscribes,invalid_emails} (`limit` at most 500,
`offset`, `start_time`/`end_time` on `created`, newest first) and
GET /v3/asm/groups/{id}/suppressions (a list of addresses). Every query is recorded.

Deletion endpoints (204 when the address was there and is removed, 404 otherwise; every call is
recorded in `deleted`): DELETE /v3/suppression/{bounces,spam_reports,invalid_emails}/{email},
DELETE /v3/asm/suppressions/global/{email} (the global unsubscribes list) and
DELETE /v3/asm/groups/{id}/suppressions/{email}. The address in the path is URL-decoded.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

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
    deleted: list[tuple[str, str, int]] = field(default_factory=list)  # (list, email, status)
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
        fake.routes = _Routes(fake.routes, self)
        return self

    def emails(self, kind: str) -> set[str]:
        """The addresses on one list (`unsubscribes`, ..., or `group_<id>`)."""
        with self.lock:
            if kind.startswith("group_"):
                return set(self.groups.get(int(kind.removeprefix("group_")), []))
            return {e["email"] for e in self.lists[kind]}

    def delete(self, request: Request) -> Answer | None:
        """The answer to a DELETE of one address, or None when the path is not one of ours."""
        path = request.path
        if path.startswith("/v3/asm/suppressions/global/"):
            kind, email = "unsubscribes", path.removeprefix("/v3/asm/suppressions/global/")
        elif path.startswith("/v3/asm/groups/") and "/suppressions/" in path:
            group, _, email = path.removeprefix("/v3/asm/groups/").partition("/suppressions/")
            kind = f"group_{group}"
        else:
            kind = next((k for k in LISTS if k != "unsubscribes"
                         and path.startswith(f"/v3/suppression/{k}/")), "")
            if not kind:
                return None
            email = path.removeprefix(f"/v3/suppression/{kind}/")
        email = unquote(email)
        with self.lock:
            if kind.startswith("group_"):
                members = self.groups.get(int(kind.removeprefix("group_")), [])
                found = email in members
                if found:
                    members.remove(email)
            else:
                before = len(self.lists[kind])
                self.lists[kind] = [e for e in self.lists[kind]
                                    if e["email"].lower() != email.lower()]
                found = len(self.lists[kind]) < before
            status = 204 if found else 404
            self.deleted.append((kind, email, status))
        if found:
            return Answer(204, None)
        return Answer(404, {"errors": [{"field": None, "message": "email not found"}]})

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


class _Routes(dict):
    """The fake's route table with DELETE of one address (any address) answered by `owner`."""

    def __init__(self, routes: dict, owner: Suppressions):
        super().__init__(routes)
        self.owner = owner

    def get(self, key: Any, default: Any = None) -> Any:
        method, path = key
        if method == "DELETE" and key not in self:
            request_path = path

            def handler(fake: FakeSendGrid, request: Request) -> Answer:
                return self.owner.delete(request) or Answer(404, {"errors": [
                    {"field": None, "message": f"not found: {request_path}"}]})

            return handler
        return super().get(key, default)
