"""Per-recipient MIME: quoted-printable templates that stay within 76 columns, and fast
messages equal to what the email package makes."""

from __future__ import annotations

import binascii
import datetime as dt
import email
import random
from email import policy

import pytest

from newsletter.compose.package import compose
from newsletter.core.personalise import Recipient, personalise
from newsletter.core.tokens import preferences_url
from newsletter.providers.mailing import Mailing
from newsletter.providers.mime import MimeRenderer, QPTemplate
from tests.conftest import sample_build

ALPHABET = "aé =\t.<>&\"'€漢\n" + "x" * 10  # no %: placeholders stay unambiguous


@pytest.mark.parametrize("seed", range(40))
def test_qp_template_decodes_to_the_substituted_text_within_76_columns(seed: int) -> None:
    rng = random.Random(seed)
    chunks = ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 300)))
              for _ in range(5)]
    template = "%%name%%".join(chunks[:3]) + "%%email%%" + "%%name%%".join(chunks[3:])
    values = {"%%name%%": "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 120))),
              "%%email%%": "x@example.org"}
    for as_html in (False, True):
        encoded = QPTemplate(template, as_html=as_html).render(values)
        assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))
        expected = template
        for key, value in values.items():
            value = value if not as_html else __import__("html").escape(value, quote=True)
            expected = expected.replace(key, value)
        decoded = binascii.a2b_qp(encoded).decode("utf-8").replace("\r\n", "\n")
        assert decoded == expected.replace("\r\n", "\n") + ("" if expected.endswith("\n")
                                                            else "\n")


def test_fast_messages_match_the_email_package() -> None:
    pub, build = sample_build("2026-11-24")
    mailing = Mailing(pub.config, build.slug, build.subject, build.html, build.text,
                      build.content_hash, "1", "secret")
    when = dt.datetime(2026, 11, 24, 12, tzinfo=dt.UTC)
    for name in ('Tom & "Jerry" <b>', "Émile Zola", "", "Plain Name"):
        recipient = Recipient("tom@example.org", name, {"role": "press"})
        fast = email.message_from_bytes(MimeRenderer(mailing).render(recipient, "<m@x>", when),
                                        policy=policy.default)
        unsubscribe = mailing.unsubscribe(recipient.email)
        preferences = preferences_url(pub.config.public_url, "secret", recipient.email)
        html, text = personalise(build.html, build.text, recipient, unsubscribe, preferences)
        slow = compose(pub.config, subject=build.subject, html=html, text=text,
                       recipient=recipient, unsubscribe=unsubscribe, message_id="<m@x>",
                       date=when)
        for header in ("From", "To", "Subject", "Date", "Message-ID", "List-Id",
                       "List-Unsubscribe", "List-Unsubscribe-Post", "Reply-To"):
            assert str(fast[header]) == str(slow[header]), header
        for kind in ("plain", "html"):
            assert (fast.get_body((kind,)).get_content().replace("\r\n", "\n")
                    == slow.get_body((kind,)).get_content())
