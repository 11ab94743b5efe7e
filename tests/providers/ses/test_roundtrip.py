"""Both directions together: a send through SES (moto's server), then SES's events for the very
messages it took (their MessageIds and the tags the transport set) posted through SNS to the
public app, and `newsletter status` counting them for that send."""

from __future__ import annotations

import json
import warnings

from newsletter.compose.publication import Publication
from newsletter.providers.ses.sns import SnsVerifier
from tests.dispatch.conftest import SLUG, Pub, add_people
from tests.fake_ses import FakeSes
from tests.fake_sns import (  # noqa: F401  (fixtures)
    TOPIC,
    FakeSnsHost,
    Signer,
    body,
    headers,
    sns_host,
    sns_pki,
    sns_signer,
    sns_stand_in,
)
from tests.providers.ses.test_send import SEND
from tests.ses_records import record


def test_events_of_an_ses_send_come_back_to_that_send(ses_pub: Pub, ses: FakeSes,
                                                      sns_host: FakeSnsHost,  # noqa: F811
                                                      sns_signer: Signer) -> None:  # noqa: F811
    host, signer = sns_host, sns_signer
    with open(ses_pub.root / "newsletter.yaml", "a", encoding="utf-8") as handle:
        handle.write(f"ses: {{topic_arns: [{TOPIC}]}}\n")
    people = add_people(ses_pub.engine, 3)
    result = ses_pub.cli(*SEND)
    assert result.exit_code == 0, result.output
    messages = {m["To"][0]: m for m in ses.messages()}

    def about(kind: str, address: str) -> dict:
        message = messages[address]
        found = record(kind, address, message_id=message["MessageId"])
        found["mail"]["tags"] = {k: [v] for k, v in message["Tags"].items()}  # as SES does
        del found["mail"]["commonHeaders"]  # only the tags tie it to the send
        return found

    posts = [about("Delivery", p) for p in people] + [about("Open", people[0]),
                                                       about("Bounce", people[1])]
    from newsletter.web.public import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    app = create_app(Publication.load(ses_pub.root), engine=ses_pub.engine, prune=False)
    app.state.sns = SnsVerifier([TOPIC], host.fetcher())
    with TestClient(app) as client:
        for found in posts:
            document = signer.notification(json.dumps(found))
            answer = client.post("/webhooks/ses", content=body(document),
                                 headers=headers(document))
            assert answer.status_code == 200 and answer.json()["applied"] == 1, answer.text
    status = ses_pub.cli("status", SLUG)
    assert status.exit_code == 0, status.output
    assert "events: 3 delivered, 1 opens (1 unique)" in status.output
    assert "1 bounces" in status.output
    listing = ses_pub.cli("subscribers", "show", people[1])
    assert "bounced" in listing.output
