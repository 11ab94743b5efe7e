"""Compliance (CAN-SPAM, Gmail and Yahoo bulk-sender rules): unsubscribe, address, sender."""

from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email

from newsletter.checks.model import ERROR, WARNING, Context, Finding
from newsletter.checks.sender import check_reserved_sender

UNSUBSCRIBE = "%%unsubscribe_url"


def check_unsubscribe(ctx: Context) -> list[Finding]:
    findings = []
    links = [a.get("href", "") for a in ctx.doc.iter("a")]
    if not any(UNSUBSCRIBE in href for href in links):
        findings.append(
            Finding(
                ERROR,
                "compliance.unsubscribe-link",
                "the HTML part has no unsubscribe link",
                'add <a href="{{ recipient("unsubscribe_url") }}">Unsubscribe</a> to the '
                "template's footer",
                part="html",
            )
        )
    if UNSUBSCRIBE not in ctx.build.text:
        findings.append(
            Finding(
                ERROR,
                "compliance.unsubscribe-text",
                "the text part has no unsubscribe link",
                'add `Unsubscribe: {{ recipient("unsubscribe_url") }}` to email.txt.j2',
                part="text",
            )
        )
    header = str(ctx.message.get("List-Unsubscribe", ""))
    if not re.search(r"<https://[^>]+>", header):
        findings.append(
            Finding(
                ERROR,
                "compliance.list-unsubscribe",
                "no List-Unsubscribe header with an https: URL"
                + (f" (found {header!r})" if header else ""),
                "set public_url: in newsletter.yaml to the https:// address of `newsletter serve`",
                part="headers",
                excerpt=f"List-Unsubscribe: {header}" if header else None,
            )
        )
    post = str(ctx.message.get("List-Unsubscribe-Post", ""))
    if post.strip() != "List-Unsubscribe=One-Click":
        findings.append(
            Finding(
                ERROR,
                "compliance.one-click",
                "no List-Unsubscribe-Post: List-Unsubscribe=One-Click header "
                "(Gmail and Yahoo require one-click unsubscribe from bulk senders)",
                "send with the tool's own message composer, which adds it",
                part="headers",
            )
        )
    return findings


def _flat(text: str) -> str:
    return " ".join(text.split()).casefold()


def check_postal_address(ctx: Context) -> list[Finding]:
    address = ctx.build.config.address.strip()  # the edition's, when translated
    config = str(ctx.pub.root / "newsletter.yaml")
    if not address:
        return [
            Finding(
                ERROR,
                "compliance.postal-address",
                "the publication has no postal address (CAN-SPAM requires one)",
                "set address: in newsletter.yaml",
                file=config,
                line=None,
            )
        ]
    findings = []
    html_text = _flat(ctx.doc.text_content())
    for part, text in (("html", html_text), ("text", _flat(ctx.build.text))):
        if _flat(address) not in text:
            findings.append(
                Finding(
                    ERROR,
                    "compliance.postal-address",
                    f"the postal address does not appear in the {part} part",
                    "show {{ pub.address }} in the template's footer",
                    part=part,
                    excerpt=address,
                )
            )
    if not re.search(r"\d", address):
        found = ctx.locate(address)
        findings.append(
            Finding(
                WARNING,
                "compliance.postal-address",
                f"'{address}' does not look like a postal address (no street or box number)",
                "give a full postal address or PO box",
                file=found[0] if found else config,
                line=found[1] if found else None,
            )
        )
    return findings


def _mailbox(ctx: Context, name: str) -> tuple[str, str] | None:
    """(display name, address) of the single mailbox in header `name`, or None if absent."""
    value = ctx.message.get(name)
    if value is None:
        return None
    addresses = getattr(value, "addresses", ())
    if len(addresses) != 1:
        return ("", str(value))
    return addresses[0].display_name, addresses[0].addr_spec


def check_sender(ctx: Context) -> list[Finding]:
    findings = []
    for name, key, required in (("From", "from", True), ("Reply-To", "reply_to", False)):
        box = _mailbox(ctx, name)
        if box is None:
            if required:
                findings.append(
                    Finding(
                        ERROR,
                        "compliance.from",
                        "the message has no From header",
                        "set from: {name, email} in newsletter.yaml",
                        part="headers",
                    )
                )
            else:
                findings.append(
                    Finding(
                        WARNING,
                        "compliance.reply-to",
                        "no Reply-To: replies go to the From address, which may be unattended",
                        "set reply_to: in newsletter.yaml to a monitored address",
                        file=str(ctx.pub.root / "newsletter.yaml"),
                    )
                )
            continue
        display, address = box
        check = f"compliance.{key.replace('_', '-')}"
        try:
            validate_email(address, check_deliverability=False)
        except EmailNotValidError as exc:
            findings.append(
                Finding(
                    ERROR,
                    check,
                    f"{name} address {address!r} is malformed: {exc}",
                    f"fix {key}: in newsletter.yaml",
                    part="headers",
                    excerpt=f"{name}: {ctx.message.get(name)}",
                )
            )
            continue
        if name == "From" and not display.strip():
            findings.append(
                Finding(
                    WARNING,
                    check,
                    "From has no display name; inboxes will show the bare address",
                    "set from: {name: ...} in newsletter.yaml",
                    part="headers",
                    excerpt=f"{name}: {ctx.message.get(name)}",
                )
            )
    return findings


def check_compliance(ctx: Context) -> list[Finding]:
    return (check_unsubscribe(ctx) + check_postal_address(ctx) + check_sender(ctx)
            + check_reserved_sender(ctx))
