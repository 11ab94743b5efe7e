"""Sign-off: `approval: {required: true, approvers: N}` holds `send` until N different people
approved the issue's current content; an edit leaves earlier approvals behind. On SQLite and
PostgreSQL (the `pub` fixture)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import func, select

from newsletter.compose import build_issue
from newsletter.compose.publication import Publication
from newsletter.core.errors import FailedError
from newsletter.db.ledger_tables import sends
from newsletter.db.tables import approvals
from newsletter.dispatch.approval import approve, content_of, require_signoff, sign_off
from tests.dispatch.conftest import ROOT, SLUG, Pub, add_people

REQUIRE_TWO = "approval: {required: true, approvers: 2}"
ENERGY = "pieces/energy.md"


def _require(pub: Pub, text: str = REQUIRE_TWO) -> None:
    config = pub.root / "newsletter.yaml"
    old = "approval: {required: false, approvers: 1}"
    config.write_text(config.read_text().replace(old, text))


def _sends(pub: Pub) -> int:
    with pub.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(sends)).scalar_one()


def _send(pub: Pub, *extra: str):
    return pub.cli("send", SLUG, "--segment", "everyone", "--yes", *extra)


def _state(pub: Pub):
    p = Publication.load(pub.root)
    return p, build_issue(p, SLUG)


def test_distinct_people_of_the_current_content_count(pub: Pub) -> None:
    _require(pub)
    p, build = _state(pub)
    with pytest.raises(FailedError, match=r"not approved \(needs 2 approvals\)"):
        require_signoff(p, build, transport="outbox")
    require_signoff(p, build, transport="outbox", dry_run=True)  # a dry run does not wait
    state = approve(p, build, "Ana Lima", check=False, engine=pub.engine)
    assert state.describe() == "approved by Ana Lima (1 of 2); needs 1 more approval"
    state = approve(p, build, "  ana   LIMA ", check=False, engine=pub.engine)  # the same
    assert [a.approver for a in state.current] == ["Ana Lima"] and state.missing == 1
    with pytest.raises(FailedError, match="needs 1 more approval"):
        require_signoff(p, build, transport="outbox")
    state = approve(p, build, "Ben Ode", check=False, engine=pub.engine)
    assert state.approved and not state.missing
    require_signoff(p, build, transport="outbox")
    with pub.engine.connect() as conn:
        rows = conn.execute(select(approvals.c.approver)).scalars().all()
    assert sorted(rows) == ["Ana Lima", "Ben Ode"]


def test_an_edit_after_approval_voids_it(pub: Pub) -> None:
    _require(pub, "approval: {required: true, approvers: 1}")
    p, build = _state(pub)
    approve(p, build, "Ana Lima", check=False, engine=pub.engine)
    require_signoff(p, build, transport="outbox")
    piece = pub.root / "issues" / SLUG / ENERGY
    before = piece.read_text()
    piece.write_text(before.replace("plug in?", "plug in at all?"))
    p, edited = _state(pub)
    with pytest.raises(FailedError) as refused:
        require_signoff(p, edited, transport="outbox")
    assert "not approved (needs 1 approval); Ana Lima approved an earlier version, before an " \
           "edit (no longer counts)" in str(refused.value)
    piece.write_text(before)  # undone: the approved content again
    p, again = _state(pub)
    require_signoff(p, again, transport="outbox")


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_commands_from_refusal_to_send(pub: Pub) -> None:
    """The CLI path once (SpamAssassin runs in each gate): send refuses naming what is
    missing, a dry run and a test send do not wait, approve, status, send."""
    add_people(pub.engine, 3)
    _require(pub)
    refused = _send(pub)
    assert refused.exit_code == 1
    assert f"refusing to send {SLUG}: not approved (needs 2 approvals)" in refused.output
    assert f"newsletter approve {SLUG}" in refused.output
    assert _sends(pub) == 0 and not list(pub.outbox.rglob("*.eml"))
    assert pub.cli("send", SLUG, "--segment", "everyone", "--dry-run").exit_code == 0
    assert pub.cli("send-test", SLUG, "--to", "editor@example.org").exit_code == 0
    first = pub.cli("approve", SLUG, "--as", "Ana Lima")
    assert first.exit_code == 0, first.output
    assert "approved by Ana Lima (1 of 2); needs 1 more approval" in first.output
    p, build = _state(pub)
    approve(p, build, "Ben Ode", check=False, engine=pub.engine)
    status = pub.cli("status", SLUG).output
    assert "approval (2 approvers required): approved by Ana Lima, Ben Ode (2 of 2)" in status
    sent = _send(pub)
    assert sent.exit_code == 0, sent.output
    assert "3 of 3 accepted" in sent.output


def test_an_edit_to_an_image_or_the_template_voids_it_too(pub: Pub) -> None:
    p = Publication.load(pub.root)
    first = content_of(p, build_issue(p, SLUG))
    chart = pub.root / "issues" / SLUG / "queue-chart.png"
    chart.write_bytes(chart.read_bytes() + b"\0")  # the same picture, other bytes
    second = content_of(p, build_issue(p, SLUG))
    assert second != first
    template = pub.root / "templates" / "default" / "email.mjml.j2"
    template.write_text(template.read_text().replace("#102a43", "#5b2a86"))
    assert content_of(p, build_issue(p, SLUG)) not in (first, second)


def test_the_content_does_not_depend_on_the_segment_topic(pub: Pub) -> None:
    p = Publication.load(pub.root)
    plain, topical = build_issue(p, SLUG), build_issue(p, SLUG, topic="energy")
    assert plain.html != topical.html  # the footer offers to stop the topic
    assert content_of(p, topical) == content_of(p, plain)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_without_the_setting_nothing_waits(pub: Pub) -> None:
    add_people(pub.engine, 1)
    assert _send(pub).exit_code == 0
    assert "approval" not in pub.cli("status", SLUG).output  # nothing to say


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_content_that_fails_the_checks_is_not_approved(pub: Pub) -> None:
    piece = pub.root / "issues" / SLUG / ENERGY
    piece.write_text(piece.read_text() + "\nTODO: a closing line.\n")
    result = pub.cli("approve", SLUG, "--as", "Ana Lima")
    assert result.exit_code == 1 and "leftover placeholder TODO" in result.output
    with pub.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(approvals)).scalar_one() == 0


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_each_edition_is_approved_on_its_own(pub: Pub) -> None:
    add_people(pub.engine, 2, attributes={"language": "ar"})
    add_people(pub.engine, 2, start=5)
    _require(pub, "approval: {required: true, approvers: 1}")
    p, build = _state(pub)
    approve(p, build, "Ana Lima", check=False, engine=pub.engine)
    refused = pub.cli("send", SLUG, "--segment", "everyone", "--editions", "--yes")
    assert refused.exit_code == 1 and f"refusing to send {SLUG}-ar" in refused.output
    approve(p, build_issue(p, f"{SLUG}-ar"), "Samir Aziz", check=False, engine=pub.engine)
    sent = pub.cli("send", SLUG, "--segment", "everyone", "--editions", "--yes")
    assert sent.exit_code == 0, sent.output


def test_names_are_checked(pub: Pub) -> None:
    for bad in ("", "   ", "a\x07b", "x" * 201):
        result = pub.cli("approve", SLUG, "--as", bad)
        assert result.exit_code == 2, (bad, result.output)


APPROVER = textwrap.dedent("""
    import sys
    from newsletter.compose import build_issue
    from newsletter.compose.publication import Publication
    from newsletter.dispatch.approval import approve
    from pathlib import Path
    pub = Publication.load(Path(sys.argv[1]))
    build = build_issue(pub, sys.argv[2])
    sys.stdin.readline()  # start together
    approve(pub, build, sys.argv[3], check=False)
""")


@pytest.mark.slow
def test_people_approving_at_once_are_each_counted_once(pub: Pub) -> None:
    """Real processes, repeated: two spellings of one person and two other people approve at
    the same moment; three approvals count, one row each."""
    _require(pub, "approval: {required: true, approvers: 3}")
    for attempt in range(2):
        piece = pub.root / "issues" / SLUG / ENERGY
        piece.write_text(piece.read_text().replace("plug in?", f"plug in? ({attempt})", 1)
                         if attempt else piece.read_text())
        names = ["Ana Lima", "ana lima", "Ben Ode", "Chen Wu"]
        procs = [subprocess.Popen([sys.executable, "-c", APPROVER, str(pub.root), SLUG, name],
                                  stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  cwd=ROOT, env={**pub.env, "PATH": "/usr/bin:/bin"})
                 for name in names]
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
        p = Publication.load(pub.root)
        state = sign_off(p, build_issue(p, SLUG), pub.engine)
        assert sorted(a.approver.casefold() for a in state.current) == [
            "ana lima", "ben ode", "chen wu"]
        assert not state.missing


def test_approve_returns_the_state_and_records_once(pub: Pub) -> None:
    p = Publication.load(pub.root)
    build = build_issue(p, SLUG)
    state = approve(p, build, "Ana Lima", check=False, engine=pub.engine)
    assert [a.approver for a in state.current] == ["Ana Lima"] and state.approved
    assert not state.required and state.missing == 0
    state = approve(p, build, "ANA LIMA", check=False, engine=pub.engine)
    assert len(state.current) == 1
