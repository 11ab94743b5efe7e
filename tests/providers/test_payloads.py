"""Postmark and Mailgun request bodies: personalisation against the plain reference
(core.personalise), documented limits, and the checks made before a send (no database)."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.core.errors import FailedError, InputError
from newsletter.core.personalise import Recipient, personalise
from newsletter.core.settings import Settings
from newsletter.core.tokens import preferences_url
from newsletter.providers import make_transport
from newsletter.providers.mailgun.payload import MailgunPayload
from newsletter.providers.mailing import Item, Mailing
from newsletter.providers.postmark.payload import (
    MAX_MESSAGES,
    MAX_REQUEST_BYTES,
    TARGET_REQUEST_BYTES,
    PostmarkPayload,
)
from tests.conftest import examples, sample_build
from tests.dispatch.conftest import ROOT, SECRET, SLUG
from tests.fake_mailgun import DOMAIN, FakeMailgun, substitute
from tests.fake_postmark import FakePostmark

EXTRA = "\n%%attr.city|nowhere%% / %%name%% / %%first_name|friend%%\n"
values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


def _mailing(extra: str = EXTRA) -> Mailing:
    publication, build = sample_build(SLUG)
    return Mailing(publication.config, build.slug, build.subject + " %%first_name|there%%",
                   build.html + f"<p>{extra}</p>", build.text + extra, build.content_hash, "7",
                   SECRET)


def _reference(mailing: Mailing, recipient: Recipient) -> tuple[str, str, str]:
    unsubscribe = mailing.unsubscribe(recipient.email)
    preferences = preferences_url(mailing.config.public_url, SECRET, recipient.email)
    html, text = personalise(mailing.html, mailing.text, recipient, unsubscribe, preferences)
    subject = personalise("", mailing.subject, recipient, unsubscribe, preferences)[1]
    return subject, html, text


MAILING = _mailing()
POSTMARK = PostmarkPayload(MAILING, "broadcast")
MAILGUN = MailgunPayload(MAILING)


@settings(max_examples=examples(50))
@given(name=values, city=values)
def test_postmark_messages_match_the_reference(name: str, city: str) -> None:
    recipient = Recipient("tom@example.org", name, {"city": city})
    message = POSTMARK.message(Item(9, recipient))
    subject, html, text = _reference(MAILING, recipient)
    assert (message["Subject"], message["HtmlBody"], message["TextBody"]) == (subject, html, text)


@settings(max_examples=examples(50))
@given(name=values, city=values)
def test_mailgun_substitution_matches_the_reference(name: str, city: str) -> None:
    """What Mailgun makes of the request (one pass of %recipient.KEY%, as the fake does) is
    what the plain reference makes of the template."""
    recipient = Recipient("tom@example.org", name, {"city": city})
    form = dict(parse_qsl(MAILGUN.body([Item(9, recipient)])[0].decode()))
    people = json.loads(form["recipient-variables"])
    mine = people["tom@example.org"]
    assert (substitute(form["subject"], mine), substitute(form["html"], mine),
            substitute(form["text"], mine)) == _reference(MAILING, recipient)
    assert substitute(form["v:nl_recipient"], mine) == "9"
    unsubscribe = substitute(form["h:List-Unsubscribe"], mine)
    assert unsubscribe == f"<{MAILING.unsubscribe('tom@example.org')}>"


def test_postmark_batches_stay_within_postmarks_limits() -> None:
    people = [Item(n, Recipient(f"r{n}@example.org", "R")) for n in range(MAX_MESSAGES)]
    for extra in ("", "x" * 200_000):
        payload = PostmarkPayload(_mailing(extra=extra), "broadcast")
        body, _ = payload.body(people[:payload.batch_size])
        assert len(body) <= TARGET_REQUEST_BYTES < MAX_REQUEST_BYTES  # 50 MB at most
        assert payload.batch_size == MAX_MESSAGES or len(body) > TARGET_REQUEST_BYTES * 0.6
    with pytest.raises(ValueError, match="500"):
        POSTMARK.body([Item(n, Recipient(f"r{n}@example.org")) for n in range(501)])
    huge = Item(1, Recipient("big@example.org", "Big", {"city": "y" * 11_000_000}))
    body, refused = POSTMARK.body([huge, Item(2, Recipient("ok@example.org"))])
    assert list(refused) == [1] and "10,485,760" in refused[1]
    assert [m["To"] for m in json.loads(body)] == ["ok@example.org"]


def test_postmark_message_fields() -> None:
    message = POSTMARK.message(Item(41, Recipient("ann@example.org", "Ann, PhD")))
    assert message["From"] == "Example Institute <newsletter@example.org>"
    assert message["To"] == '"Ann, PhD" <ann@example.org>'
    assert message["MessageStream"] == "broadcast" and message["Tag"] == SLUG
    assert message["Metadata"] == {"nl_issue": SLUG, "nl_send": "7", "nl_recipient": "41"}
    headers = {h["Name"]: h["Value"] for h in message["Headers"]}
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "TrackOpens" not in message  # the stream's own setting unless newsletter.yaml says


def test_mailgun_request_fields_and_limits() -> None:
    body, refused = MAILGUN.body([Item(1, Recipient("ann@example.org", "Ann, PhD")),
                                  Item(2, Recipient("bob@example.org"))])
    fields = parse_qsl(body.decode())
    assert [v for k, v in fields if k == "to"] == ['"Ann, PhD" <ann@example.org>',
                                                    "bob@example.org"]
    form = dict(fields)
    assert form["o:tag"] == SLUG and form["v:nl_send"] == "7"
    assert "%%" not in form["html"] + form["text"] + form["subject"]
    with pytest.raises(ValueError, match="1000"):
        MAILGUN.body([Item(n, Recipient(f"r{n}@example.org")) for n in range(1001)])
    with pytest.raises(ValueError, match="twice"):
        MAILGUN.body([Item(1, Recipient("a@example.org")), Item(2, Recipient("a@example.org"))])
    publication, build = sample_build(SLUG)
    long_slug = Mailing(publication.config, "x" * 200, build.subject, build.html, build.text,
                        build.content_hash, "7", SECRET)
    with pytest.raises(InputError, match="at most 128"):
        MailgunPayload(long_slug)


def test_mailgun_region_picks_the_api_host() -> None:
    publication, _ = sample_build(SLUG)
    env = {"MAILGUN_API_KEY": "k", "MAILGUN_DOMAIN": DOMAIN}
    settings = Settings.from_env(ROOT, env)
    assert make_transport("mailgun", settings).where == "https://api.mailgun.net"
    eu = publication.config.model_copy(update={
        "mailgun": publication.config.mailgun.model_copy(update={"region": "eu"})})
    assert make_transport("mailgun", settings, eu).where == "https://api.eu.mailgun.net"
    override = Settings.from_env(ROOT, {**env, "MAILGUN_API_URL": "http://127.0.0.1:1/"})
    assert make_transport("mailgun", override, eu).where == "http://127.0.0.1:1"


@pytest.mark.parametrize("change,words", [
    ({"MAILGUN_DOMAIN": "mg.example.org/../x"}, "is not a domain name"),
    ({"MAILGUN_DOMAIN": ""}, "MAILGUN_DOMAIN is not set"),
])
def test_mailgun_domain_setting(change: dict, words: str) -> None:
    from newsletter.core.errors import NewsletterError

    env = {"MAILGUN_API_KEY": "k", "MAILGUN_DOMAIN": DOMAIN, **change}
    with pytest.raises(NewsletterError, match=words):
        make_transport("mailgun", Settings.from_env(ROOT, env))


def test_postmark_preflight_wants_a_broadcasts_stream() -> None:
    publication, _ = sample_build(SLUG)
    with FakePostmark() as fake:
        env = {"POSTMARK_SERVER_TOKEN": fake.token, "POSTMARK_API_URL": fake.url}
        settings = Settings.from_env(ROOT, env)
        make_transport("postmark", settings, publication.config).preflight()  # broadcast: fine

        def with_stream(stream: str):
            return publication.config.model_copy(update={
                "postmark": publication.config.postmark.model_copy(
                    update={"message_stream": stream})})

        with pytest.raises(FailedError, match="is a Transactional stream"):
            make_transport("postmark", settings, with_stream("outbound")).preflight()
        with pytest.raises(FailedError, match="no message stream 'weekly'"):
            make_transport("postmark", settings, with_stream("weekly")).preflight()


def test_mailgun_preflight_wants_an_active_domain_in_the_region() -> None:
    with FakeMailgun() as fake:
        env = {"MAILGUN_API_KEY": fake.key, "MAILGUN_DOMAIN": DOMAIN, "MAILGUN_API_URL": fake.url}
        make_transport("mailgun", Settings.from_env(ROOT, env)).preflight()
        fake.domains[DOMAIN] = "unverified"
        with pytest.raises(FailedError, match="is unverified, not active"):
            make_transport("mailgun", Settings.from_env(ROOT, env)).preflight()
        other = {**env, "MAILGUN_DOMAIN": "mg.elsewhere.example"}
        with pytest.raises(FailedError, match="check MAILGUN_DOMAIN and mailgun.region"):
            make_transport("mailgun", Settings.from_env(ROOT, other)).preflight()
