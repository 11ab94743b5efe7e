"""moto's standalone server, extended with the SES v2 calls moto 5.2.5 lacks, as a stand-in
for Amazon SES: `python -m tests.fake_ses_server --port N --control-port M`.

moto's SESv2 backend implements SendEmail (raw content goes to its SES store) but not
GetAccount, PutSuppressedDestination, ListSuppressedDestinations or
DeleteSuppressedDestination. This test-side plugin adds
them to moto's own SESV2Response before the server starts, with the request and answer shapes
AWS publishes (the botocore service model routes them; ServiceException codes take their HTTP
status from that model), and makes SendEmail behave as SES does where our transport relies
on it:

- the account's SendQuota (MaxSendRate, Max24HourSend, SentLast24Hours) is what `GetAccount`
  reports, and with `enforce_rate` SendEmail answers TooManyRequestsException ("Maximum
  sending rate exceeded.") beyond MaxSendRate (a one-second bucket) and past the daily quota;
- a configuration set the request names must exist (NotFoundException);
- in the sandbox (ProductionAccessEnabled false) a recipient must be a verified identity
  (MessageRejected "Email address is not verified. ...", as SES words it);
- the account-level suppression list is paged with NextToken and filtered by StartDate,
  EndDate and Reason.

Every accepted SendEmail is logged (message id, destination, tags, configuration set, the
raw message unless `--light`). A small HTTP server on `--control-port` (not AWS's API: the
test's own handle) answers `GET /messages`, `GET /count`, `GET /suppressed` (the listed
addresses), `POST /account` (JSON: fields of the account to change), `POST /suppressed`
(entries with the test's own LastUpdateTime) and `POST /reset`. The server prints `READY` once
both ports listen.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from moto.core.exceptions import ServiceException
from moto.sesv2.responses import SESV2Response

PAGE_MAX = 1000


class TooManyRequests(ServiceException):
    code = "TooManyRequestsException"


class NotFound(ServiceException):
    code = "NotFoundException"


class Rejected(ServiceException):
    code = "MessageRejected"


class BadRequest(ServiceException):
    code = "BadRequestException"


@dataclass
class State:
    """The stand-in account (one per server: tests use one account and region)."""

    max_rate: float = 1000.0
    max_24h: float = 1_000_000.0
    sent_24h: float = 0.0
    production: bool = True
    sending_enabled: bool = True
    enforcement: str = "HEALTHY"
    enforce_rate: bool = True
    light: bool = False  # keep no message bodies (the benchmark)
    messages: list[dict[str, Any]] = field(default_factory=list)
    suppressed: dict[str, dict[str, Any]] = field(default_factory=dict)  # lower address ->
    tokens: float = 0.0
    filled_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> bool:
        """One send from a bucket of one second's worth, refilled at MaxSendRate."""
        now = time.monotonic()
        capacity = max(1.0, self.max_rate)
        if not self.filled_at:
            self.tokens, self.filled_at = capacity, now
        self.tokens = min(capacity, self.tokens + (now - self.filled_at) * self.max_rate)
        self.filled_at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


STATE = State()


def _epoch(value: str | None) -> float | None:
    if not value:
        return None
    text = value[0] if isinstance(value, list) else value
    try:
        return float(text)
    except ValueError:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# -- the calls moto lacks, and SendEmail as SES does it ------------------------------------------
def get_account(self: SESV2Response) -> str:
    return json.dumps({
        "DedicatedIpAutoWarmupEnabled": False,
        "EnforcementStatus": STATE.enforcement,
        "ProductionAccessEnabled": STATE.production,
        "SendingEnabled": STATE.sending_enabled,
        "SendQuota": {"Max24HourSend": STATE.max_24h, "MaxSendRate": STATE.max_rate,
                      "SentLast24Hours": STATE.sent_24h},
        "SuppressionAttributes": {"SuppressedReasons": ["BOUNCE", "COMPLAINT"]},
    })


def put_suppressed_destination(self: SESV2Response) -> str:
    params = json.loads(self.body)
    address, reason = params.get("EmailAddress") or "", params.get("Reason")
    if "@" not in address or reason not in ("BOUNCE", "COMPLAINT"):
        raise BadRequest("EmailAddress and Reason (BOUNCE or COMPLAINT) are required")
    with STATE.lock:
        STATE.suppressed[address.lower()] = {"EmailAddress": address, "Reason": reason,
                                             "LastUpdateTime": time.time()}
    return "{}"


def list_suppressed_destinations(self: SESV2Response) -> str:
    query = self.querystring
    start, end = _epoch(query.get("StartDate")), _epoch(query.get("EndDate"))
    reasons = set(query.get("Reason") or []) or {"BOUNCE", "COMPLAINT"}
    size = int((query.get("PageSize") or [PAGE_MAX])[0])
    if not 1 <= size <= PAGE_MAX:
        raise BadRequest(f"PageSize must be between 1 and {PAGE_MAX}")
    token = (query.get("NextToken") or [""])[0]
    offset = int(base64.b64decode(token).decode()) if token else 0
    with STATE.lock:
        found = sorted((e for e in STATE.suppressed.values()
                        if e["Reason"] in reasons
                        and (start is None or e["LastUpdateTime"] >= start)
                        and (end is None or e["LastUpdateTime"] <= end)),
                       key=lambda e: (e["LastUpdateTime"], e["EmailAddress"]))
    page = found[offset:offset + size]
    answer: dict[str, Any] = {"SuppressedDestinationSummaries": page}
    if offset + size < len(found):
        answer["NextToken"] = base64.b64encode(str(offset + size).encode()).decode()
    return json.dumps(answer)


def delete_suppressed_destination(self: SESV2Response) -> str:
    address = unquote(self._get_param("EmailAddress") or "")
    with STATE.lock:
        if STATE.suppressed.pop(address.lower(), None) is None:
            raise NotFound(f"Email address {address} does not exist on your suppression list.")
    return "{}"


_moto_send_email = SESV2Response.send_email


def send_email(self: SESV2Response) -> str:
    params = json.loads(self.body)
    names = params.get("ConfigurationSetName")
    if names and names not in self.sesv2_backend.core_backend.config_sets:
        raise NotFound(f"Configuration set <{names}> does not exist.")
    destinations = (params.get("Destination") or {}).get("ToAddresses") or []
    if not STATE.production:
        unverified = [a for a in destinations
                      if not self.sesv2_backend.core_backend._is_verified_address(a)]
        if unverified:
            raise Rejected("Email address is not verified. The following identities failed "
                           f"the check in region {self.region.upper()}: "
                           f"{', '.join(unverified)}")
    with STATE.lock:
        if STATE.enforce_rate and STATE.sent_24h + len(destinations) > STATE.max_24h:
            raise TooManyRequests("Daily message quota exceeded.")
        if STATE.enforce_rate and not STATE.take():
            raise TooManyRequests("Maximum sending rate exceeded.")
        STATE.sent_24h += len(destinations)  # counted now: concurrent requests see it
    if STATE.light:
        message_id = f"{uuid.uuid4().hex}-000000"
    else:
        try:
            message_id = json.loads(_moto_send_email(self))["MessageId"]
        except Exception:
            with STATE.lock:
                STATE.sent_24h -= len(destinations)
            raise
    raw = ((params.get("Content") or {}).get("Raw") or {}).get("Data")
    entry = {"MessageId": message_id, "To": destinations,
             "From": params.get("FromEmailAddress"),
             "Tags": {t["Name"]: t["Value"] for t in params.get("EmailTags") or []},
             "ConfigurationSetName": names, "at": time.time()}
    if not STATE.light:
        entry["Raw"] = raw
    with STATE.lock:
        STATE.messages.append(entry)
    return json.dumps({"MessageId": message_id})


def install() -> None:
    """Register the calls on moto's SESV2Response and their paths among moto's SESv2 URLs
    (before the server serves anything)."""
    from moto.sesv2 import urls

    for path in ("{0}/v2/email/account$", "{0}/v2/email/suppression/addresses$",
                 "{0}/v2/email/suppression/addresses/(?P<EmailAddress>[^/]+)$"):
        urls.url_paths[path] = SESV2Response.dispatch
    SESV2Response.get_account = get_account  # type: ignore[attr-defined]
    SESV2Response.put_suppressed_destination = put_suppressed_destination  # type: ignore
    SESV2Response.list_suppressed_destinations = list_suppressed_destinations  # type: ignore
    SESV2Response.delete_suppressed_destination = delete_suppressed_destination  # type: ignore
    SESV2Response.send_email = send_email  # type: ignore[method-assign]


# -- the test's control port ---------------------------------------------------------------------
ACCOUNT_FIELDS = {"MaxSendRate": "max_rate", "Max24HourSend": "max_24h",
                  "SentLast24Hours": "sent_24h", "ProductionAccessEnabled": "production",
                  "SendingEnabled": "sending_enabled", "EnforcementStatus": "enforcement",
                  "enforce_rate": "enforce_rate"}


class Control(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, value: Any) -> None:
        body = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        with STATE.lock:
            if self.path == "/suppressed":
                self._json(sorted(STATE.suppressed))
            elif self.path == "/count":
                self._json({"messages": len(STATE.messages)})
            else:
                self._json(list(STATE.messages))

    def do_POST(self) -> None:  # noqa: N802
        size = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(size) or b"{}")
        with STATE.lock:
            if self.path == "/suppressed":  # entries with a LastUpdateTime of the test's
                for entry in body:
                    STATE.suppressed[entry["EmailAddress"].lower()] = entry
                self._json({"ok": True})
                return
            if self.path == "/reset":
                STATE.messages.clear()
                STATE.suppressed.clear()
                STATE.sent_24h = 0.0
            for key, name in ACCOUNT_FIELDS.items():
                if key in body:
                    setattr(STATE, name, body[key])
            STATE.filled_at = 0.0  # a fresh bucket for the new rate
        self._json({"ok": True})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--light", action="store_true", help="keep no message bodies")
    args = parser.parse_args()
    STATE.light = args.light
    install()
    control = ThreadingHTTPServer(("127.0.0.1", args.control_port), Control)
    threading.Thread(target=control.serve_forever, daemon=True).start()
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", args.port, app, threaded=True)
    print("READY", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
