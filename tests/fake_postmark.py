"""A local stand-in for api.postmarkapp.com, by Postmark's published API (tests/fake_http.py
for what every fake does).

- Every request needs `X-Postmark-Server-Token` (else 401, ErrorCode 10).
- `POST /email/batch`: a JSON array (Content-Type application/json, else 422 ErrorCode 409) of
  at most 500 messages (else 422 ErrorCode 410) and 50 MB (else 413). Answers 200 with one
  result per message, in order: ErrorCode 0 and a MessageID when the message is good; 300
  (no body, a bad To address by Postmark's own patterns, a long tag, bad metadata), 400 (From
  is not a sender signature), 406 (the recipient is inactive: `inactive`), 1235 (no such
  message stream) otherwise. Each accepted message is kept as a `Delivery`.
- `GET /server`, `GET /message-streams/{id}` (`streams`: id -> type; 422 ErrorCode 1226 for an
  unknown one), `GET /message-streams/{id}/suppressions/dump` (`suppressions`, filtered by
  `fromdate` and `EmailAddress`).
- `POST /message-streams/{id}/suppressions/delete` with `{"Suppressions": [{"EmailAddress"}]}`
  (at most 50): each address answers `Deleted` (its HardBounce or ManualSuppression entries are
  gone; an address that was not suppressed answers `Deleted` too) or, for a SpamComplaint,
  `Failed` with a Message: Postmark does not reactivate those. An address in `suppressions` is
  inactive for sending (406) like one in `inactive`.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from tests.fake_http import Answer, FakeApi, Request, main

TOKEN = "fake-postmark-server-token"
SENDER = "newsletter@example.org"
# Postmark's documented address patterns (support article "What does Error Code 300 mean?")
MAILBOX = re.compile(r"^[a-z0-9.!#$%&'`*+\-/=^_{}|~]+$", re.IGNORECASE)
DOMAIN = re.compile(r"^((\.)?[a-zA-Z0-9\-])+$")
NAMED = re.compile(r"^\s*(?:\"((?:[^\"\\]|\\.)*)\"|([^<>\"]*?))\s*<([^<>]+)>\s*$")


@dataclass
class Delivery:
    """One accepted message, as Postmark would send it."""

    email: str
    name: str | None
    subject: str
    html: str
    text: str
    headers: dict[str, str]
    metadata: dict[str, str]
    tag: str | None
    stream: str
    message_id: str


def split_address(value: str) -> tuple[str | None, str]:
    """(display name, address) of `Name <a@b>`, `"Quoted, Name" <a@b>` or `a@b`."""
    match = NAMED.match(value)
    if not match:
        return None, value.strip()
    quoted, plain, email = match.groups()
    name = quoted.replace('\\"', '"').replace("\\\\", "\\") if quoted is not None else plain
    return name or None, email.strip()


def valid_address(email: str) -> bool:
    local, at, domain = email.rpartition("@")
    return bool(at and local and MAILBOX.match(local) and DOMAIN.match(domain)
                and not local.startswith(".") and not local.endswith(".") and ".." not in local
                and "." in domain)


class FakePostmark(FakeApi):
    send_pattern = "/email/batch"

    def __init__(self, token: str = TOKEN, **kwargs: Any):
        super().__init__(**kwargs)
        self.token = token
        self.senders = {SENDER}
        self.streams = {"broadcast": "Broadcasts", "outbound": "Transactional"}
        self.inactive: set[str] = set()
        self.suppressions: list[dict[str, Any]] = []
        self.deliveries: list[Delivery] = []
        self.route("GET", "/server", lambda fake, r: Answer(200, {"ID": 1, "Name": "Fake"}))
        self.route("GET", r"/message-streams/([^/]+)", FakePostmark._stream)
        self.route("GET", r"/message-streams/([^/]+)/suppressions/dump",
                   FakePostmark._dump)
        self.route("POST", r"/message-streams/([^/]+)/suppressions/delete",
                   FakePostmark._delete)

    def refuse(self, request: Request) -> Answer | None:
        if request.headers.get("x-postmark-server-token") != self.token:
            return Answer(401, {"ErrorCode": 10, "Message": "No Account or Server API tokens "
                                "were supplied in the HTTP headers. Please add a header for "
                                "either X-Postmark-Server-Token or X-Postmark-Account-Token."})
        return None

    def error(self, status: int, message: str) -> Answer:
        return Answer(status, {"ErrorCode": 100 if status >= 500 else 300, "Message": message})

    # -- routes ---------------------------------------------------------------------------
    def _stream(self, request: Request) -> Answer:
        stream = request.match.group(1) if request.match else ""
        if stream not in self.streams:
            return Answer(422, {"ErrorCode": 1226, "Message": "The message stream for the "
                                "provided 'ID' was not found."})
        return Answer(200, {"ID": stream, "ServerID": 1, "Name": stream,
                            "MessageStreamType": self.streams[stream]})

    def _dump(self, request: Request) -> Answer:
        since = (request.query.get("fromdate") or [""])[0]
        address = (request.query.get("EmailAddress") or [""])[0].lower()
        with self.lock:
            rows = [row for row in self.suppressions
                    if (not since or row["CreatedAt"][:10] >= since)
                    and (not address or row["EmailAddress"].lower() == address)]
        return Answer(200, {"Suppressions": rows})

    def _delete(self, request: Request) -> Answer:
        stream = request.match.group(1) if request.match else ""
        if stream not in self.streams:
            return self._stream(request)
        try:
            asked = request.json()
        except ValueError:
            return Answer(422, {"ErrorCode": 402, "Message": "Received invalid JSON input."})
        entries = asked.get("Suppressions") if isinstance(asked, dict) else None
        if (not isinstance(entries, list) or not entries or len(entries) > 50
                or not all(isinstance(e, dict) and isinstance(e.get("EmailAddress"), str)
                           for e in entries)):
            return Answer(422, {"ErrorCode": 403, "Message": "Incompatible JSON: give "
                                "'Suppressions', 1 to 50 objects with an 'EmailAddress'."})
        return Answer(200, {"Suppressions": [self._reactivate(e["EmailAddress"])
                                             for e in entries]})

    def _reactivate(self, address: str) -> dict[str, Any]:
        key = address.strip().lower()
        with self.lock:
            mine = [r for r in self.suppressions if r["EmailAddress"].lower() == key]
            if any(r["SuppressionReason"] == "SpamComplaint" for r in mine):
                return {"EmailAddress": address, "Status": "Failed",
                        "Message": "You do not have the permission to delete the suppression: "
                                   "spam complaints cannot be reactivated."}
            self.suppressions = [r for r in self.suppressions if r not in mine]
            self.inactive.discard(key)
        return {"EmailAddress": address, "Status": "Deleted", "Message": None}

    def suppressed(self, address: str) -> bool:
        """Whether Postmark would refuse `address` as an inactive recipient."""
        key = address.lower()
        with self.lock:
            return key in self.inactive or any(r["EmailAddress"].lower() == key
                                               for r in self.suppressions)

    # -- sending --------------------------------------------------------------------------
    def count_only(self, request: Request) -> list[str]:
        return [split_address(m["To"])[1] for m in orjson.loads(request.body)]

    def instant_answer(self, request: Request) -> Answer:
        count = len(orjson.loads(request.body))
        return Answer(200, [{"ErrorCode": 0, "Message": "OK", "MessageID": str(uuid.uuid4())}
                            for _ in range(count)])

    def accept(self, request: Request) -> Answer:
        if not request.headers.get("content-type", "").startswith("application/json"):
            return Answer(422, {"ErrorCode": 409, "Message": "JSON required"})
        if len(request.body) > 50 * 1024 * 1024:
            return Answer(413, b"Payload Too Large", {"Content-Type": "text/plain"})
        try:
            messages = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            return Answer(422, {"ErrorCode": 402, "Message": "Received invalid JSON input."})
        if not isinstance(messages, list):
            return Answer(422, {"ErrorCode": 403, "Message": "Incompatible JSON: the batch "
                                "endpoint takes an array of messages."})
        if len(messages) > 500:
            return Answer(422, {"ErrorCode": 410, "Message": "Too many batch messages: you "
                                "may send at most 500 messages in one batch."})
        results = [self._message(m) for m in messages]
        self.checked += 1
        return Answer(200, results)

    def _message(self, message: Any) -> dict[str, Any]:
        def fail(code: int, text: str) -> dict[str, Any]:
            return {"ErrorCode": code, "Message": text}

        if not isinstance(message, dict):
            return fail(402, "Received invalid JSON input.")
        _, sender = split_address(str(message.get("From", "")))
        if sender not in self.senders:
            return fail(400, f"The 'From' address you supplied ({sender}) is not a Sender "
                             "Signature on your account.")
        to = message.get("To")
        if not isinstance(to, str) or not to:
            return fail(300, "Invalid 'To' address: ''.")
        name, email = split_address(to)
        if not valid_address(email):
            return fail(300, f"Invalid 'To' address: '{email}'.")
        if self.suppressed(email):
            return fail(406, "You tried to send to recipient(s) that have been marked as "
                             f"inactive. Found inactive addresses: {email.lower()}. Inactive "
                             "recipients are ones that have generated a hard bounce, a spam "
                             "complaint, or a manual suppression.")
        if not message.get("HtmlBody") and not message.get("TextBody"):
            return fail(300, "Provide either email TextBody or HtmlBody or both.")
        if len(str(message.get("Tag") or "")) > 1000:
            return fail(300, "Tags are limited to 1000 characters.")
        metadata = message.get("Metadata") or {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in
                                                     metadata.values()):
            return fail(300, "Invalid metadata content: values must be strings.")
        stream = message.get("MessageStream") or "outbound"
        if stream not in self.streams:
            return fail(1235, f"The message stream '{stream}' was not found.")
        headers = {h["Name"]: h["Value"] for h in message.get("Headers") or []}
        message_id = str(uuid.uuid4())
        with self.lock:
            self.counts[email.lower()] += 1
            if self.keep:
                self.deliveries.append(Delivery(
                    email, name, str(message.get("Subject") or ""),
                    str(message.get("HtmlBody") or ""), str(message.get("TextBody") or ""),
                    headers, dict(metadata), message.get("Tag"), stream, message_id))
        return {"ErrorCode": 0, "Message": "OK", "MessageID": message_id,
                "SubmittedAt": dt.datetime.now(dt.UTC).isoformat(), "To": to}


if __name__ == "__main__":
    main(FakePostmark, "A local stand-in for Postmark's API.")
