"""`newsletter send` through Postmark and Mailgun against their fakes: the same guarantees as
SendGrid's (tests/dispatch/test_sendgrid.py, test_faults.py)."""

from __future__ import annotations

from sqlalchemy import select

from newsletter.db.ledger_tables import send_recipients
from tests.dispatch.conftest import SLUG, Pub, add_people
from tests.providers.conftest import Rig


def _ledger(pub: Pub) -> dict[str, tuple[str, str | None, str | None]]:
    with pub.engine.connect() as conn:
        rows = conn.execute(select(send_recipients.c.email, send_recipients.c.state,
                                   send_recipients.c.last_error,
                                   send_recipients.c.provider_id)).all()
    return {r.email: (r.state, r.last_error, r.provider_id) for r in rows}


def test_send_delivers_once_each(pub: Pub, rig: Rig) -> None:
    people = add_people(pub.engine, 30)
    pub.env[rig.batch_env] = "7"
    result = rig.send(pub, SLUG, "--segment", "everyone")
    assert result.exit_code == 0, result.output
    assert f"completed via {rig.name}: 30 of 30 accepted" in result.output
    counts = rig.fake.recipients()
    assert set(counts) == {p.lower() for p in people} and set(counts.values()) == {1}
    assert len(rig.fake.sends()) == 5
    assert all(state == "accepted" and pid for state, _, pid in _ledger(pub).values())
