"""`newsletter send --transport ses` around the edges: hostile data, the checks before anything
is sent, dry runs, test sends, the configuration set, and what SES cannot do (schedule)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from newsletter.db.ledger_tables import sends
from tests.dispatch.conftest import SLUG, Pub, add_people
from tests.dispatch.test_faults import HOSTILE, _check_settled, _hostile_people
from tests.fake_ses import FakeSes, free_port

SEND = ["send", SLUG, "--segment", "everyone", "--transport", "ses", "--yes"]


def _sends(pub: Pub) -> int:
    with pub.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(sends)).scalar_one()


def test_hostile_data_through_ses(ses_pub: Pub, ses: FakeSes) -> None:
    """Each address gets exactly one message or a stated failure; SES takes no non-ASCII
    local part, an IDN domain goes out as A-labels, and no name breaks a header."""
    ordinary = _hostile_people(ses_pub)
    result = ses_pub.cli(*SEND)
    _check_settled(ses_pub, result, ordinary, ses.recipients(), {"jörg@example.org"})
    assert any(address.startswith("jörg@") for address, _ in HOSTILE)
    for message in ses.messages():
        mime = FakeSes.parsed(message)
        assert len(mime.get_all("To")) == 1 and mime.get_all("Bcc") is None
        assert mime["To"].addresses[0].addr_spec == message["To"][0]


def test_ses_cannot_schedule(ses_pub: Pub, ses: FakeSes) -> None:
    add_people(ses_pub.engine, 2)
    for flag in (["--at", "2030-01-01T10:00Z"], ["--undo-window", "15m"]):
        result = ses_pub.cli(*SEND, *flag)
        assert result.exit_code == 2, result.output
        assert "needs the sendgrid transport" in result.output
        assert "the ses transport sends at once" in result.output
    assert ses.sends == [] and _sends(ses_pub) == 0


def test_sendgrids_undo_window_setting_does_not_hold_an_ses_send(ses_pub: Pub,
                                                                 ses: FakeSes) -> None:
    with open(ses_pub.root / "newsletter.yaml", "a", encoding="utf-8") as handle:
        handle.write("sendgrid: {undo_window: 15m}\n")
    add_people(ses_pub.engine, 2)
    result = ses_pub.cli(*SEND)
    assert result.exit_code == 0, result.output
    assert len(ses.recipients()) == 2


def test_dry_run_needs_no_aws_and_shows_the_request(ses_pub: Pub, ses: FakeSes,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    add_people(ses_pub.engine, 3)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        ses_pub.env.pop(key)
        monkeypatch.delenv(key)
    result = ses_pub.cli(*SEND, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "3 messages personalised for ses" in result.output
    request = json.loads((ses_pub.root / "dist" / SLUG / "dry-run.json").read_text("utf-8"))
    assert request["FromEmailAddress"] == "newsletter@example.org"
    assert request["Destination"]["ToAddresses"][0].endswith("@example.com")
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in request["Content"]["Raw"]["Data"]
    assert ses.sends == [] and _sends(ses_pub) == 0


def test_an_example_org_sender_is_refused_towards_the_real_ses(ses_pub: Pub, ses: FakeSes,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    add_people(ses_pub.engine, 3)
    ses_pub.env.pop("AWS_ENDPOINT_URL_SESV2")  # boto3 would go to email.us-east-1.amazonaws.com
    monkeypatch.delenv("AWS_ENDPOINT_URL_SESV2")
    result = ses_pub.cli(*SEND)
    assert result.exit_code == 1
    assert "a domain reserved for examples (RFC 2606): mail from it through ses" in result.output
    assert ses.sends == [] and _sends(ses_pub) == 0


def test_a_test_send_through_ses(ses_pub: Pub, ses: FakeSes) -> None:
    result = ses_pub.cli("send-test", SLUG, "--transport", "ses", "--to", "editor@example.org")
    assert result.exit_code == 0, result.output
    [message] = ses.messages()
    assert message["To"] == ["editor@example.org"]
    assert FakeSes.parsed(message)["Subject"].startswith("[TEST] ")
    assert message["Tags"]["nl_send"].startswith("test-")


def test_the_configuration_set_goes_with_every_message(ses_pub: Pub, ses: FakeSes) -> None:
    ses.client().create_configuration_set(ConfigurationSetName="newsletter-events")
    with open(ses_pub.root / "newsletter.yaml", "a", encoding="utf-8") as handle:
        handle.write("ses: {configuration_set: newsletter-events}\n")
    add_people(ses_pub.engine, 3)
    result = ses_pub.cli(*SEND)
    assert result.exit_code == 0, result.output
    assert {m["ConfigurationSetName"] for m in ses.messages()} == {"newsletter-events"}


def test_a_configuration_set_ses_does_not_know_stops_the_send(ses_pub: Pub,
                                                              ses: FakeSes) -> None:
    with open(ses_pub.root / "newsletter.yaml", "a", encoding="utf-8") as handle:
        handle.write("ses: {configuration_set: missing-set}\n")
    add_people(ses_pub.engine, 3)
    result = ses_pub.cli(*SEND)
    assert result.exit_code == 1
    assert "Configuration set <missing-set> does not exist" in result.output
    assert ses.recipients() == {}


def test_bad_ses_settings_are_refused_with_file_and_line(ses_pub: Pub) -> None:
    with open(ses_pub.root / "newsletter.yaml", "a", encoding="utf-8") as handle:
        handle.write("ses: {region: Frankfurt, topic_arns: [arn:aws:sqs:x]}\n")
    result = ses_pub.cli("check", SLUG)
    assert result.exit_code == 2
    assert "newsletter.yaml" in result.output
    assert "is not an AWS region" in result.output


# -- refused before anything is sent ------------------------------------------------------------
def test_credentials_ses_refuses_are_one_error_before_anything_is_sent(ses_pub: Pub,
                                                                       ses: FakeSes) -> None:
    add_people(ses_pub.engine, 3)
    ses.answer(("aws", 403, "UnrecognizedClientException", "The security token included in "
                "the request is invalid."), path="/v2/email/account")
    result = ses_pub.cli(*SEND)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith(
        "Error: SES refused the AWS credentials (UnrecognizedClientException")
    assert ses.sends == [] and _sends(ses_pub) == 0


def test_an_account_with_sending_disabled_is_refused(ses_pub: Pub, ses: FakeSes) -> None:
    add_people(ses_pub.engine, 3)
    ses.account(SendingEnabled=False)
    result = ses_pub.cli(*SEND)
    assert result.exit_code == 1 and "SES has sending disabled" in result.output
    assert ses.sends == [] and _sends(ses_pub) == 0


@pytest.mark.parametrize("missing", ["region", "endpoint"])
def test_no_region_or_no_ses_is_one_clear_error(ses_pub: Pub, ses: FakeSes, missing: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    add_people(ses_pub.engine, 3)
    if missing == "region":
        ses_pub.env.pop("AWS_REGION")
        monkeypatch.delenv("AWS_REGION")
        words = "no AWS region for SES: set AWS_REGION"
    else:
        url = f"http://127.0.0.1:{free_port()}"
        ses_pub.env["AWS_ENDPOINT_URL_SESV2"] = url
        words = f"cannot reach SES at {url}"
    result = ses_pub.cli(*SEND)
    assert result.exit_code in (1, 2) and words in result.output, result.output
    assert "Traceback" not in result.output and _sends(ses_pub) == 0
