"""The confirmation email of a sign-up, sent through the configured transport.

It uses the mail providers (newsletter.providers), as the dispatch engine does: a one-recipient
Mailing with the confirmation link written in, outside the send ledger.
"""

from __future__ import annotations

import hashlib
import logging

from jinja2 import Environment

from newsletter.audience.model import utcnow
from newsletter.compose.publication import Publication
from newsletter.core.personalise import Recipient
from newsletter.providers import make_transport
from newsletter.providers.mailing import Item, Mailing

log = logging.getLogger("newsletter.public")


def confirmation_mailing(pub: Publication, env: Environment, link: str, days: int) -> Mailing:
    """The confirmation message (HTML and text) for one link."""
    config = pub.config
    values = {"publication": config.name, "publisher": config.publisher,
              "address": config.address, "link": link, "days": days,
              "language": config.language}
    html = env.get_template("confirm_email.html").render(values)
    text = env.get_template("confirm_email.txt").render(values)
    digest = hashlib.sha256((html + text).encode()).hexdigest()
    stamp = utcnow().strftime("%Y%m%d")
    return Mailing(config=config, slug="confirmations", send_ref=f"confirm-{stamp}",
                   subject=f"Confirm your subscription to {config.name}", html=html, text=text,
                   content_hash=digest, secret=pub.settings.secret or "")


def send_confirmation(pub: Publication, env: Environment, email: str, name: str, link: str,
                      days: int) -> bool:
    """Hand the confirmation to the transport; True when it was accepted (failures are logged
    without the address, never shown to the visitor)."""
    try:
        transport = make_transport(None, pub.settings, pub.config)
        transport.open(confirmation_mailing(pub, env, link, days))
        key = int(utcnow().timestamp() * 1000) % 10**12
        try:
            result = transport.send([Item(key, Recipient(email=email, name=name))])
        finally:
            transport.close()
    except Exception as exc:  # a broken transport must not break the web page
        log.error("could not send a sign-up confirmation (%s)", type(exc).__name__)
        return False
    outcome = result.outcomes[0]
    if outcome.state != "accepted":  # the reason may quote the address: logs never do
        log.warning("a sign-up confirmation was not accepted (%s)", outcome.state)
        return False
    return True
