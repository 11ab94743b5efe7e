"""SES event records in the shapes AWS documents ("Examples of event data that Amazon SES
publishes to Amazon SNS"), for a message our SES transport sent: its tags name the send, the
ledger row and the issue."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from tests.fake_sns import sns_time


def mail(address: str, *, send: int | None = 1, row: int | None = 1,
         message_id: str | None = None, at: dt.datetime | None = None,
         tags: bool = True) -> dict[str, Any]:
    """The `mail` object of a record (tags as SES publishes them: lists of strings)."""
    found: dict[str, Any] = {
        "timestamp": sns_time(at), "source": "Newsletter <newsletter@example.org>",
        "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/example.org",
        "sendingAccountId": "123456789012",
        "messageId": message_id or f"0100{uuid.uuid4().hex}-000000",
        "destination": [address], "headersTruncated": False,
        "commonHeaders": {"from": ["Newsletter <newsletter@example.org>"], "to": [address],
                          "messageId": f"<2026-11-24.{send}.{row}@example.org>",
                          "subject": "The week in expert commentary"},
    }
    if tags:
        found["tags"] = {"ses:configuration-set": ["newsletter-events"],
                         "nl_send": [str(send)], "nl_recipient": [str(row)],
                         "nl_issue": ["2026-11-24"]}
    return found


def record(kind: str, address: str, *, at: dt.datetime | None = None,
           section: dict[str, Any] | None = None, **mail_args: Any) -> dict[str, Any]:
    """One record of `kind` (Bounce, Complaint, Delivery, Open, Click, ...) for `address`."""
    stamp = sns_time(at)
    defaults: dict[str, tuple[str, dict[str, Any]]] = {
        "Bounce": ("bounce", {
            "bounceType": "Permanent", "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": address, "action": "failed",
                                   "status": "5.1.1",
                                   "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
            "timestamp": stamp, "feedbackId": f"0100{uuid.uuid4().hex}-000000",
            "reportingMTA": "dsn; a8-50.smtp-out.amazonses.com"}),
        "Complaint": ("complaint", {
            "complainedRecipients": [{"emailAddress": address}], "timestamp": stamp,
            "feedbackId": f"0100{uuid.uuid4().hex}-000000", "complaintSubType": None,
            "userAgent": "ExampleCorp Feedback Loop (V0.01)",
            "complaintFeedbackType": "abuse", "arrivalDate": stamp}),
        "Delivery": ("delivery", {
            "timestamp": stamp, "processingTimeMillis": 546, "recipients": [address],
            "smtpResponse": "250 ok:  Message 64111812 accepted",
            "reportingMTA": "a8-70.smtp-out.amazonses.com"}),
        "DeliveryDelay": ("deliveryDelay", {
            "timestamp": stamp, "delayType": "MailboxFull",
            "expirationTime": stamp, "reportingMTA": "a8-70.smtp-out.amazonses.com",
            "delayedRecipients": [{"emailAddress": address, "status": "4.2.2",
                                   "diagnosticCode": "smtp; 452 4.2.2 mailbox full"}]}),
        "Open": ("open", {"ipAddress": "192.0.2.1", "timestamp": stamp,
                          "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) "
                                       "AppleWebKit/537.36 (KHTML, like Gecko) "
                                       "Chrome/124.0 Safari/537.36"}),
        "Click": ("click", {"ipAddress": "192.0.2.1", "timestamp": stamp,
                            "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) "
                                         "AppleWebKit/605.1.15 Version/17.4 Safari/605.1.15",
                            "link": "https://example.org/2026-11-24/grid",
                            "linkTags": {"samplekey0": ["samplevalue0"]}}),
        "Reject": ("reject", {"reason": "Bad content"}),
        "Send": ("send", {}),
        "Subscription": ("subscription", {
            "contactList": "newsletter", "timestamp": stamp, "source": "UnsubscribeHeader",
            "newTopicPreferences": {"unsubscribeAll": True},
            "oldTopicPreferences": {"unsubscribeAll": False}}),
    }
    name, body = defaults[kind]
    return {"eventType": kind, name: {**body, **(section or {})},
            "mail": mail(address, at=at, **mail_args)}


def notification(kind: str, address: str, **args: Any) -> dict[str, Any]:
    """The same record as an identity's feedback notification (`notificationType`, no tags)."""
    found = record(kind, address, tags=False, **args)
    found["notificationType"] = found.pop("eventType")
    return found
