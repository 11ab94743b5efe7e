"""Running a subject test: `send ISSUE --segment S --test-subjects A --test-subjects B`.

`propose()` plans it like any send (build, the quality gate with every subject checked,
sign-off, transport) and sizes the sample; `Proposal.start()` stores the test and draws the
sample (dispatch.subjects.store). From then on `advance()` carries the test as far as it can
go now, yielding each send to run (a `TestPlan`, which the caller executes) and a `Note` on
each step: one send per subject, each to its share of the sample (its *arm*); once every arm
has gone, the wait; after it, the decision (dispatch.subjects.decide, on the figures the
caller's `measure` reads: people judged human, newsletter.events); then the winner's send to
the rest of the segment.

It is one issue family in the ledger: every send of the test, and any later send of the issue,
leaves out whoever the family reached, so nobody gets two subjects. Every step is read back
from the database, so a kill anywhere is resumed by running `advance()` again (`send` again,
or `serve` with `subject_tests: {finish_in_serve: true}`): an arm or the rest under way is
resumed as any send is, and a decision is stored once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select

from newsletter.core.errors import FailedError, NewsletterError
from newsletter.core.words import letter as label
from newsletter.db.tables import subscribers
from newsletter.dispatch.artifact import Artifact
from newsletter.dispatch.ledger import Ledger, SendRow
from newsletter.dispatch.ledger.store import utcnow
from newsletter.dispatch.options import DEFAULTS, SendOptions, SubjectTestOptions
from newsletter.dispatch.plan import family_of, open_ledger, plan_send, segment_condition
from newsletter.dispatch.send_plan import SendPlan
from newsletter.dispatch.subjects import store
from newsletter.dispatch.subjects.decide import ArmFigures, decide
from newsletter.dispatch.subjects.store import MAX_SUBJECTS, SubjectTest
from newsletter.providers import capabilities, make_transport

if TYPE_CHECKING:
    from newsletter.compose import Build
    from newsletter.compose.publication import Publication

#: `measure(engine, [(send id, counted until), ...], "clicks"|"opens")`: for each send, the
#: people whose click (open) by then was a human's, and those whose only ones were machines'
#: (newsletter.events.subject_figures.people_who_acted)
Measure = Callable[[Engine, Sequence[tuple[int, dt.datetime]], str], list[tuple[int, int]]]
#: `before_send(pub, engine, provider)`: the suppression sync (newsletter.events.suppressions)
BeforeSend = Callable[[Any, Engine, str], str]
MEASURES = ("clicks", "opens")
#: what to do next for an arm (or the rest): a send to run, "stop" (the one run in this call
#: did not complete), or None (it is done, or nobody is left for it)
Step = SendPlan | str | None


@dataclass
class TestPlan(SendPlan):
    """A send of a subject test: one subject's share (`arm`), or the winner to the rest."""

    test_id: int = 0
    arm: int | None = None  # None: the rest
    #: the test's earlier send whose links and pieces this one carries (no build in hand)
    links_from: int | None = None


@dataclass(frozen=True)
class Note:
    """A step of the test, in words."""

    text: str


@dataclass
class Proposal:
    """A test about to start: the send it splits, its subjects and the size of each share."""

    plan: SendPlan
    subjects: tuple[str, ...]
    sample: int
    decide_after: dt.timedelta
    measure: str
    level: float
    share: int  # people per subject

    def summary(self) -> list[tuple[str, str]]:
        rows = [row for row in self.plan.summary() if row[0] != "Subject"]
        rows.insert(1, ("Subjects", "; ".join(f"{label(i)}: {s}"
                                              for i, s in enumerate(self.subjects))))
        rest = self.plan.count - self.share * len(self.subjects)
        rows.append(("Test", f"{self.share:,} people per subject ({self.sample}% of "
                             f"{self.plan.count:,}), judged by people's {self.measure} after "
                             f"{_duration(self.decide_after)} at level {self.level:g}; then the "
                             f"winner to the other {rest:,}"))
        return rows

    def start(self) -> SubjectTest:
        """Store the test and draw its sample (SendBusy: another test of the issue is open)."""
        plan = self.plan
        try:
            return store.create(
                plan.ledger.store, issue=plan.slug, segment=plan.segment,
                transport=plan.transport.name, subjects=self.subjects, sample=self.sample,
                measure=self.measure, decide_after=self.decide_after, level=self.level,
                send_at=plan.at, undo_window=plan.undo_window, members=plan.recipients)
        except ValueError as exc:
            raise NewsletterError(f"the sample is too small: {exc}") from None


def _duration(span: dt.timedelta) -> str:
    seconds = int(span.total_seconds())
    hours, rest = divmod(seconds, 3600)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (rest // 60, "m"),
                                                (rest % 60, "s")) if n) or "0s"


def propose(pub: Publication, issue: str, segments: Sequence[str], asked: SubjectTestOptions,
            options: SendOptions = DEFAULTS) -> Proposal:
    """Plan a subject test of ISSUE to the segments (`options` as for `plan_send`; --again,
    --retry-failed, --resume and the settling of unknown outcomes belong to plain sends)."""
    from newsletter.checks.subjects import require_subjects

    subjects = asked.subject_lines
    sample, decide_after, measure = asked.sample, asked.decide_after, asked.measure
    if not 2 <= len(subjects) <= MAX_SUBJECTS:
        raise NewsletterError(f"a subject test needs 2 to {MAX_SUBJECTS} subjects; repeat "
                              "--test-subjects for each")
    if not 0 < sample <= 100:
        raise NewsletterError("--sample must be a share above 0% and at most 100%")
    if measure not in MEASURES:
        raise NewsletterError(f"--by must be one of {', '.join(MEASURES)}")
    if decide_after <= dt.timedelta(0):
        raise NewsletterError("--decide-after must be a duration like 4h or 90m")
    plain = [name for name in ("again", "retry_failed", "resend_unknown", "accept_unknown",
                               "resume") if getattr(options, name)]
    if plain:
        raise NewsletterError(f"--{plain[0].replace('_', '-')} belongs to a plain send, not to "
                              "a subject test")
    chosen = options.transport or pub.settings.transport
    if measure == "opens" and not capabilities(chosen).flags_machine_opens:
        raise NewsletterError(f"--by opens needs a provider that tells machine opens from "
                              f"people's; the {chosen} transport cannot, so Apple's "
                              "prefetching would decide: judge by clicks")
    plan = plan_send(pub, issue, segments, options)
    if plan.send is not None:
        raise NewsletterError(f"send #{plan.send.id} of {plan.slug} is not finished; resume "
                              "or cancel it before testing subjects")
    assert plan.build is not None
    require_subjects(pub, plan.build, subjects)
    share = plan.count * sample // 100 // len(subjects)
    if share < 1:
        raise NewsletterError(f"the sample is too small: {sample}% of {plan.count:,} "
                              f"recipients leaves fewer than one person for each of "
                              f"{len(subjects)} subjects")
    return Proposal(plan, subjects, sample, decide_after, measure,
                    pub.config.subject_tests.level, share)


# -- carrying a test on --------------------------------------------------------------------------

@dataclass
class _Carry:
    """What one `advance()` call knows: the ledger, the message in hand, the sends it ran."""

    pub: Publication
    ledger: Ledger
    test: SubjectTest
    settle: SendOptions
    artifact: Artifact | None = None
    build: Build | None = None
    tried: set[str] = field(default_factory=set)


def advance(pub: Publication, test: SubjectTest, *, measure: Measure,
            before_send: BeforeSend | None = None, first: SendPlan | None = None,
            now: dt.datetime | None = None, settle: SendOptions = DEFAULTS
            ) -> Iterator[TestPlan | Note]:
    """Carry `test` on as far as it can go now. Yields each send to run (the caller executes
    it, then asks for the next step) and a Note on each other step; ends when the test waits,
    is done, or a send it ran did not complete (run again to resume). `first`: the plan the
    test was proposed with, in this process (its build and checked message); `settle`:
    the options that settle unknown outcomes (SendOptions.settling), passed to resumed
    sends."""
    carry = _Carry(pub, first.ledger if first else open_ledger(pub), test, settle)
    if first is not None:
        carry.artifact, carry.build = first.artifact, first.build
    while True:
        test = carry.test = store.get(carry.ledger.engine, test.id)
        if test.state in ("testing", "finishing"):
            rest = test.state == "finishing"
            step = _rest(carry, before_send) if rest else _next_arm(carry)
            if isinstance(step, SendPlan):
                carry.tried.add(step.segment)
                yield step
                continue
            if step == "stop":
                return
            if rest:
                store.finished(carry.ledger.store, test.id)
                yield Note(f"subject test {test.id} of {test.issue} is done: the rest got "
                           f"\"{test.chosen()}\"")
                return
            store.all_sent(carry.ledger.store, test.id, _decide_at(carry, now))
            continue
        if test.state == "waiting":
            assert test.decide_at is not None
            if (now or utcnow()) < test.decide_at:
                yield Note(f"subject test {test.id}: every subject has gone; the decision is "
                           f"due at {test.decide_at:%Y-%m-%d %H:%M} UTC (send again then, or "
                           "let `serve` finish it with subject_tests: {finish_in_serve: true})")
                return
            decision = _decide(carry, measure)
            if store.decided(carry.ledger.store, test.id, decision[0], decision[1],
                             decision[2]):
                yield Note(f"subject test {test.id} decided: {decision[2]}")
            continue
        return


def _sends_of(carry: _Carry, label_: str) -> SendRow | None:
    found = carry.ledger.sends.of_issue(carry.test.issue, label_)
    return found[-1] if found else None


def _step(carry: _Carry, label_: str, arm: int | None, members: Any) -> Step:
    """The send to run for one arm (or the rest): a resume or a new send (see Step)."""
    last = _sends_of(carry, label_)
    if last is not None and last.state in ("completed", "cancelled"):
        return None
    if last is not None:  # under way or stopped: resume it as any send
        if label_ in carry.tried:
            return "stop"
        try:
            return plan_send(carry.pub, carry.test.issue, label_,
                             dataclasses.replace(carry.settle, transport=carry.test.transport))
        except NewsletterError:
            # another run of the test may have finished this send since it was read: then it
            # is done (planning it anew would take its label for a segment), else the refusal
            now_ = _sends_of(carry, label_)
            if now_ is not None and now_.state in ("completed", "cancelled"):
                return None
            raise
    if label_ in carry.tried:
        return None  # its send found nobody left when it was to be created
    plan = _new_plan(carry, label_, arm, members)
    return plan if plan.count else None


def _next_arm(carry: _Carry) -> Step:
    test = carry.test
    base = segment_condition(carry.pub, test.segment.split(" + "))
    for arm in range(len(test.subjects)):
        step = _step(carry, test.arm_label(arm), arm, base & store.arm_members(test.id, arm))
        if step is not None:
            return step
    return None


def _rest(carry: _Carry, before_send: BeforeSend | None) -> Step:
    test = carry.test
    if (_sends_of(carry, test.rest_label) is None and before_send is not None
            and capabilities(test.transport).suppression_lists
            and test.rest_label not in carry.tried):
        before_send(carry.pub, carry.ledger.engine, test.transport)
    return _step(carry, test.rest_label, None,
                 segment_condition(carry.pub, test.segment.split(" + ")))


def _message(carry: _Carry) -> tuple[Artifact, int | None]:
    """The message every send of the test carries (its subject aside), and the earlier send
    whose links it has when no build is in hand: the first arm's frozen copy once it exists,
    else a build of the issue now, through the same gate as any send."""
    if carry.artifact is not None:
        return carry.artifact, None
    test = carry.test
    for label_ in test.labels():
        first = carry.ledger.sends.of_issue(test.issue, label_)
        frozen = carry.ledger.artifacts.load(first[0].id) if first else None
        if frozen is not None:
            carry.artifact = frozen
            return frozen, first[0].id
    from newsletter.checks import require_passing
    from newsletter.compose import build_issue
    from newsletter.dispatch.approval import require_signoff

    build = build_issue(carry.pub, test.issue)
    require_passing(carry.pub, build, test.subjects)
    require_signoff(carry.pub, build, transport=test.transport)
    family = family_of(carry.pub, build.slug, carry.ledger)
    carry.artifact, carry.build = Artifact.freeze(carry.pub, build, family), build
    return carry.artifact, None


def _new_plan(carry: _Carry, label_: str, arm: int | None, members: Any) -> TestPlan:
    from newsletter.compose.pipeline import content_hash

    test, pub = carry.test, carry.pub
    base, links_from = _message(carry)
    subject = test.subjects[arm] if arm is not None else test.chosen()
    artifact = dataclasses.replace(base, subject=subject,
                                   content_hash=content_hash(subject, base.html, base.text))
    family = tuple(dict.fromkeys(family_of(pub, test.issue, carry.ledger) + base.family))
    at = test.send_at if arm is not None and test.send_at and test.send_at > utcnow() \
        + dt.timedelta(minutes=1) else None
    plan = TestPlan(pub=pub, slug=test.issue, artifact=artifact, build=carry.build,
                    segment=label_, transport=make_transport(test.transport, pub.settings,
                                                             pub.config),
                    ledger=carry.ledger, members=members, send=None, count=0, family=family,
                    options=SendOptions(transport=test.transport, at=at),
                    undo_window=test.undo_window if at is None else None,
                    test_id=test.id, arm=arm, links_from=links_from)
    with carry.ledger.engine.connect() as conn:
        plan.count = conn.execute(select(func.count()).select_from(subscribers)
                                  .where(plan.recipients(conn))).scalar_one()
    return plan


def _arm_sends(carry: _Carry) -> list[SendRow | None]:
    test = carry.test
    return [_sends_of(carry, test.arm_label(arm)) for arm in range(len(test.subjects))]


def _started(carry: _Carry, send: SendRow) -> dt.datetime:
    """When a send's messages were released: its first kept scheduled run's send_at when
    scheduled, else when it started."""
    runs = [r.send_at for r in carry.ledger.scheduled.runs(send.id) if r.state == "open"]
    return min(runs) if runs else (send.send_at or send.created_at)


def _decide_at(carry: _Carry, now: dt.datetime | None) -> dt.datetime:
    """The last arm's release plus the wait (each arm is judged over the same span)."""
    starts = [_started(carry, s) for s in _arm_sends(carry) if s is not None]
    return max(starts, default=now or utcnow()) + carry.test.decide_after


def _decide(carry: _Carry, measure: Measure) -> tuple[int, list[dict[str, Any]], str]:
    test = carry.test
    sends = _arm_sends(carry)
    counted = [(s.id, _started(carry, s) + test.decide_after) for s in sends if s is not None]
    found = iter(measure(carry.ledger.engine, counted, test.measure))
    figures = []
    for subject, send in zip(test.subjects, sends, strict=True):
        people, machine = next(found) if send is not None else (0, 0)
        figures.append(ArmFigures(subject, send.accepted if send else 0, people, machine))
    decision = decide(figures, test.level, test.measure)
    rows = [f.as_dict() | {"send": s.id if s else None} for f, s in zip(figures, sends,
                                                                        strict=True)]
    return decision.winner, rows, decision.note


def cancel_test(pub: Publication, issue: str) -> tuple[SubjectTest, list[SendRow]] | None:
    """`send cancel ISSUE` while a test is open: every send of the test that can still be
    stopped is (dispatch.status.cancel_scheduled), and the test is given up, so the rest is
    never sent. None when the issue has no open test."""
    from newsletter.dispatch.plan import slug_of
    from newsletter.dispatch.status import cancel_scheduled

    ledger = open_ledger(pub)
    test = store.find_open(ledger.engine, slug_of(pub, issue))
    if test is None:
        return None
    stopped = []
    for label_ in test.labels():
        try:
            stopped.append(cancel_scheduled(pub, test.issue, label_))
        except FailedError:
            raise
        except NewsletterError:
            continue  # nothing of this send left to stop
    store.cancel(ledger.store, test.id, "cancelled with `newsletter send cancel`")
    return store.get(ledger.engine, test.id), stopped
