"""A local stand-in for api.mailgun.net (and api.eu.mailgun.net), by Mailgun's published API
(tests/fake_http.py for what every fake does).

- Every request needs basic auth `api:<key>` (else 401 `Forbidden`, plain text).
- `POST /v3/<domain>/messages`, form-encoded: the domain must be one of `domains` (else 404
  `Domain not found`); `from`, a `to` per recipient (at most 1,000), `text` or `html`; every
  address must parse, else 400 "'to' parameter is not a valid address. please check
  documentation" for the whole request, which names no address (`bad_addresses` makes more
  addresses invalid); `o:`/`h:`/`v:` options at most 16 kB together; `recipient-variables` a
  JSON object. Answers 200 `{"id": "<...>", "message": "Queued. Thank you."}` and keeps one
  `Delivery` per recipient with every `%recipient.KEY%` replaced (in one pass) in the subject,
  the parts, the headers and the variables, as Mailgun does.
- `GET /v3/domains/<domain>` (`{"domain": {"name", "state"}}`), and the suppression lists
  `GET /v3/<domain>/bounces|complaints|unsubscribes?limit=&page=next&address=` with `paging`
  links (`lists`); `DELETE /v3/<domain>/<list>/<address>` takes an address off one (200
  `{"message", "address"}`, or 404 `{"message": "Address not found in bounces table"}`).
- A recipient on one of the lists (an unsubscribe with the tag `*` or one of the message's
  tags) is accepted with the rest but never delivered: Mailgun drops it (`dropped`: address and
  the reason its `failed` event would carry, `suppress-bounce`, ...).
"""

from __future__ import annotations

import base64
import email.utils
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

import orjson

from tests.fake_http import Answer, FakeApi, Request, main

API_KEY = "fake-mailgun-key"
DOMAIN = "mg.example.org"
INVALID_TO = "'to' parameter is not a valid address. please check documentation"
ADDRESS = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")
VARIABLE = re.compile(r"%recipient\.([A-Za-z0-9_:.-]+)%")
#: list -> (the reason of the `failed` event for a dropped message, the DELETE answer's words)
LISTS = {"bounces": ("suppress-bounce", "Bounced addresses for this domain have been removed"),
         "complaints": ("suppress-complaint", "Spam complaint has been removed"),
         "unsubscribes": ("suppress-unsubscribe", "Unsubscribe event has been removed")}


@dataclass
class Delivery:
    """One recipient's message, substituted as Mailgun would send it."""

    email: str
    name: str | None
    subject: str
    text: str
    html: str
    headers: dict[str, str]
    variables: dict[str, str]
    tags: list[str]
    message_id: str


def substitute(text: str, values: dict[str, Any]) -> str:
    """One pass: a substituted value is never substituted again."""
    return VARIABLE.sub(lambda m: str(values.get(m.group(1), m.group(0))), text)


class FakeMailgun(FakeApi):
    send_pattern = r"/v3/[^/]+/messages"

    def __init__(self, key: str = API_KEY, **kwargs: Any):
        super().__init__(**kwargs)
        self.key = key
        self.domains = {DOMAIN: "active"}
        self.bad_addresses: set[str] = set()  # refused like malformed ones
        self.lists: dict[str, list[dict[str, Any]]] = {"bounces": [], "complaints": [],
                                                       "unsubscribes": []}
        self.deliveries: list[Delivery] = []
        self.dropped: list[tuple[str, str]] = []  # (address, reason), as its failed event says
        self.route("GET", r"/v3/domains/([^/]+)", FakeMailgun._domain)
        self.route("GET", r"/v3/([^/]+)/(bounces|complaints|unsubscribes)", FakeMailgun._list)
        self.route("DELETE", r"/v3/([^/]+)/(bounces|complaints|unsubscribes)/([^/]+)",
                   FakeMailgun._remove)

    def refuse(self, request: Request) -> Answer | None:
        expected = "Basic " + base64.b64encode(f"api:{self.key}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return Answer(401, b"Forbidden", {"Content-Type": "text/plain"})
        return None

    def error(self, status: int, message: str) -> Answer:
        return Answer(status, {"message": message})

    # -- routes ---------------------------------------------------------------------------
    def _domain(self, request: Request) -> Answer:
        name = request.match.group(1) if request.match else ""
        if name not in self.domains:
            return Answer(404, {"message": "Domain not found"})
        return Answer(200, {"domain": {"name": name, "state": self.domains[name]},
                            "receiving_dns_records": [], "sending_dns_records": []})

    def _list(self, request: Request) -> Answer:
        assert request.match is not None
        domain, name = request.match.groups()
        if domain not in self.domains:
            return Answer(404, {"message": "Domain not found"})
        limit = min(1000, int((request.query.get("limit") or ["100"])[0]))
        after = (request.query.get("address") or [""])[0]
        rows = sorted(self.lists[name], key=lambda r: r["address"])
        page = [r for r in rows if r["address"] > after][:limit]
        base = f"{self.url}/v3/{domain}/{name}"
        last = page[-1]["address"] if page else after
        return Answer(200, {"items": page, "paging": {
            "first": f"{base}?{urlencode({'limit': limit})}",
            "next": f"{base}?{urlencode({'page': 'next', 'address': last, 'limit': limit})}",
            "previous": f"{base}?{urlencode({'page': 'previous', 'address': after})}",
            "last": f"{base}?{urlencode({'page': 'last', 'limit': limit})}"}})

    def _remove(self, request: Request) -> Answer:
        assert request.match is not None
        domain, name, address = request.match.groups()
        if domain not in self.domains:
            return Answer(404, {"message": "Domain not found"})
        address = unquote(address)
        with self.lock:
            rows = self.lists[name]
            kept = [r for r in rows if r["address"].lower() != address.lower()]
            if len(kept) == len(rows):
                return Answer(404, {"message": f"Address not found in {name} table"})
            self.lists[name] = kept
        return Answer(200, {"message": LISTS[name][1], "address": address})

    def suppression(self, address: str, tags: list[str]) -> str | None:
        """The reason Mailgun drops a message to `address` (None: it delivers it)."""
        key = address.lower()
        with self.lock:
            for name, (reason, _) in LISTS.items():
                for row in self.lists[name]:
                    if row["address"].lower() != key:
                        continue
                    scope = (row.get("tags") or ["*"]) if name == "unsubscribes" else ["*"]
                    if "*" in scope or set(scope) & set(tags):
                        return reason
        return None

    # -- sending --------------------------------------------------------------------------
    def count_only(self, request: Request) -> list[str]:
        return [email.utils.parseaddr(v)[1] for k, v in parse_qsl(request.body.decode())
                if k == "to"]

    def instant_answer(self, request: Request) -> Answer:
        return Answer(200, {"id": f"<{uuid.uuid4().hex}@{DOMAIN}>",
                            "message": "Queued. Thank you."})

    def accept(self, request: Request) -> Answer:
        domain = request.path.split("/")[2]
        if domain not in self.domains:
            return Answer(404, {"message": "Domain not found"})
        if not request.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"):
            return Answer(400, {"message": "this fake takes form-encoded requests only"})
        fields = parse_qsl(request.body.decode("ascii"), keep_blank_values=True)
        form: dict[str, list[str]] = {}
        for key, value in fields:
            form.setdefault(key, []).append(value)
        first = {key: values[0] for key, values in form.items()}
        if not first.get("from"):
            return Answer(400, {"message": "from parameter is missing"})
        to = form.get("to") or []
        if not to:
            return Answer(400, {"message": "to parameter is missing"})
        if len(to) > 1000:
            return Answer(400, {"message": "Too many recipients; max is 1000"})
        people = [email.utils.parseaddr(value) for value in to]
        if any(not ADDRESS.match(addr) or addr.lower() in self.bad_addresses
               for _, addr in people):
            return Answer(400, {"message": INVALID_TO})
        if not first.get("text") and not first.get("html"):
            return Answer(400, {"message": "Need at least one of 'text' or 'html' parameters "
                                           "specified"})
        options = sum(len(k) + len(v.encode()) for k, v in fields if k[:2] in ("o:", "h:", "v:"))
        if options > 16 * 1024:
            return Answer(400, {"message": "Send options (parameters starting with o:, h:, or "
                                           "v:) are limited to 16 kB total"})
        if any(not k[2:].isascii() for k in first if k.startswith("h:")):
            return Answer(400, {"message": "Header name must be pure ASCII"})
        try:
            variables = orjson.loads(first.get("recipient-variables") or "{}")
        except orjson.JSONDecodeError:
            variables = None
        if not isinstance(variables, dict):
            return Answer(400, {"message": "recipient-variables parameter is not a valid JSON"})
        message_id = f"<{uuid.uuid4().hex}@{domain}>"
        self.checked += 1
        self._record(first, form, people, variables, message_id)
        return Answer(200, {"id": message_id, "message": "Queued. Thank you."})

    def _record(self, first: dict[str, str], form: dict[str, list[str]],
                people: list[tuple[str, str]], variables: dict[str, Any],
                message_id: str) -> None:
        deliveries, dropped = [], []
        tags = form.get("o:tag", [])
        for name, addr in people:
            reason = self.suppression(addr, tags)
            if reason is not None:
                dropped.append((addr, reason))
                continue
            if self.keep:
                values = variables.get(addr) or {}
                fill = lambda text, v=values: substitute(text, v)  # noqa: E731
                deliveries.append(Delivery(
                    addr, name or None, fill(first.get("subject", "")),
                    fill(first.get("text", "")), fill(first.get("html", "")),
                    {k[2:]: fill(v) for k, v in first.items() if k.startswith("h:")},
                    {k[2:]: fill(v) for k, v in first.items() if k.startswith("v:")},
                    form.get("o:tag", []), message_id))
        with self.lock:
            gone = {addr for addr, _ in dropped}
            self.counts.update(addr.lower() for _, addr in people if addr not in gone)
            self.deliveries += deliveries
            self.dropped += dropped


if __name__ == "__main__":
    main(FakeMailgun, "A local stand-in for Mailgun's API.")
