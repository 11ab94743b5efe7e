"""`send` (dry runs too) and `send-test` run `newsletter check` first and refuse on errors."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from newsletter.db.ledger_tables import sends
from tests.dispatch.conftest import SLUG, Pub, add_people


def _break_issue(pub: Pub) -> None:
    piece = pub.root / "issues" / SLUG / "pieces" / "trade.md"
    piece.write_text(piece.read_text() + "\nTODO: add the final paragraph.\n")


def _sends(pub: Pub) -> int:
    with pub.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(sends)).scalar_one()


@pytest.mark.slow
def test_send_refuses_an_issue_that_fails_its_checks(pub: Pub) -> None:
    add_people(pub.engine, 3)
    _break_issue(pub)
    for extra in ((), ("--dry-run",)):
        result = pub.cli("send", SLUG, "--segment", "everyone", "--yes", *extra)
        assert result.exit_code == 1, result.output
        assert "newsletter check found 1 error in" in result.output
        assert "trade.md:" in result.output and "leftover placeholder TODO" in result.output
    assert _sends(pub) == 0
    assert not pub.outbox.exists() or not any(pub.outbox.rglob("*.eml"))


def test_send_test_refuses_an_issue_that_fails_its_checks(pub: Pub) -> None:
    _break_issue(pub)
    result = pub.cli("send-test", SLUG)
    assert result.exit_code == 1, result.output
    assert "leftover placeholder TODO" in result.output
    assert not pub.outbox.exists() or not any(pub.outbox.rglob("*.eml"))


def test_warnings_do_not_block_a_send(pub: Pub) -> None:
    add_people(pub.engine, 2)
    result = pub.cli("send", SLUG, "--segment", "everyone", "--yes")
    assert result.exit_code == 0, result.output
    assert len(list(pub.outbox.rglob("*.eml"))) == 2
