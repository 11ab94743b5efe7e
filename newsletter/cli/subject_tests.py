"""How `newsletter send --test-subjects` shows itself: the test's plan, each of its sends (as
`send` shows any send), each step, and `send cancel` of an open test. The work is in
newsletter.dispatch.subjects; imported by cli.dispatch when a command needs it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from newsletter.cli.common import App, console, err_console
from newsletter.core.errors import NewsletterError

if TYPE_CHECKING:
    from newsletter.dispatch.options import SendOptions, SubjectTestOptions


def open_test(pub: Any, issue: str) -> Any:
    """The open subject test of ISSUE, or None."""
    from newsletter.dispatch.plan import open_ledger, slug_of
    from newsletter.dispatch.subjects.store import find_open

    return find_open(open_ledger(pub).engine, slug_of(pub, issue))


def _percent(text: str) -> int:
    value = text.strip().removesuffix("%").strip()
    if not value.isdigit() or not 0 < int(value) <= 100:
        raise NewsletterError(f"--sample {text!r} is not a share like 20% (1% to 100%)")
    return int(value)


def _duration(text: str) -> Any:
    from newsletter.compose.fields import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise NewsletterError(f"--decide-after: {exc}") from None


def subject_test_options(subjects: tuple[str, ...], sample_text: str, decide_text: str,
                         measure: str) -> SubjectTestOptions:
    """--test-subjects, --sample, --decide-after and --by, read."""
    from newsletter.dispatch.options import SubjectTestOptions

    return SubjectTestOptions(subjects, _percent(sample_text), _duration(decide_text), measure)


def _start(app: App, issue: str, segments: tuple[str, ...], asked: SubjectTestOptions, *,
           yes: bool, skip_url_check: bool, options: SendOptions) -> tuple[Any, Any] | None:
    """Plan, show and (once confirmed) start a new test: (test, its plan), or None after a
    dry run."""
    from newsletter.cli.sending import check_online, show_dry_run, show_rows
    from newsletter.dispatch.subjects.run import propose

    pub = app.publication
    dry_run = options.dry_run
    proposal = propose(pub, issue, segments, asked, options)
    plan = proposal.plan
    if not dry_run:
        plan.transport.preflight()
    online = None if dry_run else check_online(pub, plan, skip_url_check)
    show_rows(proposal.summary())
    for note in plan.notes:
        err_console.print(f"note: {note}", markup=False, highlight=False)
    if online:
        online()
    if dry_run:
        show_dry_run(plan)
        return None
    if not yes and not click.confirm("Start the subject test?", default=False, err=True):
        raise click.exceptions.Exit(1)
    return proposal.start(), plan


def _label(segments: tuple[str, ...]) -> str:
    """The segments as a test names them (`a + b`, each once)."""
    return " + ".join(dict.fromkeys(segments))


def _started_meanwhile(pub: Any, issue: str, segments: tuple[str, ...],
                       asked: SubjectTestOptions) -> Any:
    """The open test of ISSUE when another process started the very test asked for (its
    segments and subjects) since this one looked; None otherwise."""
    other = open_test(pub, issue)
    if other is None or other.segment != _label(segments) or \
            other.subjects != asked.subject_lines:
        return None
    console.print(f"another process started subject test {other.id} of {other.issue} with "
                  "these subjects just now; carrying it on")
    return other


def send_subject_test(app: App, issue: str, segments: tuple[str, ...],
                      asked: SubjectTestOptions, *, yes: bool, skip_url_check: bool,
                      options: SendOptions) -> None:
    """Start a subject test of ISSUE, or carry the open one on as far as it goes now (the
    subjects, sample and wait of `asked` only start one)."""
    from newsletter.cli.sending import finish_without_sending, run, show_plan
    from newsletter.dispatch.ledger import SendBusy
    from newsletter.dispatch.subjects.run import Note, advance
    from newsletter.dispatch.subjects.store import busy_message
    from newsletter.events.subject_figures import people_who_acted
    from newsletter.events.suppressions import sync_before_send

    pub = app.publication
    test, first = open_test(pub, issue), None
    if test is not None and not segments and options.resume:
        segments = tuple(test.segment.split(" + "))  # `send ISSUE --resume`: the test's own
    if test is None:
        if options.resume:
            raise NewsletterError("--resume takes up a send under way; a subject test is "
                                  "started with --segment and --test-subjects")
        try:
            started = _start(app, issue, segments, asked, yes=yes,
                             skip_url_check=skip_url_check, options=options)
        except SendBusy:  # another process started a test of the issue since: the same one?
            # (refused by the plan's check of an open test, or by the test's unique index)
            test = None if options.dry_run else _started_meanwhile(pub, issue, segments, asked)
            if test is None:
                raise
        else:
            if started is None:
                return
            test, first = started
            console.print(f"subject test {test.id} of {test.issue} started: "
                          f"{len(test.subjects)} subjects")
    else:
        if _label(segments) != test.segment:
            raise SendBusy(busy_message(test))
        if asked.subjects and asked.subject_lines != test.subjects:
            raise NewsletterError(f"subject test {test.id} of {test.issue} tests other "
                                  f"subjects ({'; '.join(test.subjects)}); carry it on without "
                                  "--test-subjects, or stop it with `newsletter send cancel "
                                  f"{test.issue}`")
        if options.dry_run:
            raise NewsletterError(f"subject test {test.id} of {test.issue} is under way; a dry "
                                  "run plans a new send")
        console.print(f"carrying on subject test {test.id} of {test.issue} ({test.state})")
    for step in advance(pub, test, measure=people_who_acted, before_send=sync_before_send,
                        first=first, settle=options.settling()):
        if isinstance(step, Note):
            console.print(step.text, markup=False, highlight=False, soft_wrap=True)
            continue
        step.transport.preflight()
        show_plan(step)
        if (step.send is not None and step.count == 0 and step.send.unknown
                and not options.accepting):
            finish_without_sending(step)  # names the unknown ones and how to settle them
        run(step)


def cancel_subject_test(pub: Any, issue: str) -> bool:
    """`send cancel ISSUE` while a subject test is open: stop its sends that can still be
    stopped and give the test up (the rest is never sent); False when there is none."""
    from newsletter.dispatch.subjects.run import cancel_test

    found = cancel_test(pub, issue)
    if found is None:
        return False
    test, stopped = found
    for send in stopped:
        console.print(f"cancelled send #{send.id} of {send.issue} to '{send.segment}'",
                      markup=False, highlight=False)
    console.print(f"cancelled subject test {test.id} of {test.issue}: the rest of "
                  f"'{test.segment}' will not be sent the winner", markup=False,
                  highlight=False)
    return True


def show_tests(pub: Any, issue: str) -> None:
    """`status ISSUE`: each subject test of the issue, its state and (once decided) each
    subject's figures and the decision."""
    from newsletter.core.words import letter as label
    from newsletter.dispatch.options import utc_minute
    from newsletter.dispatch.plan import open_ledger, slug_of
    from newsletter.dispatch.subjects.store import of_issue

    for test in of_issue(open_ledger(pub).engine, [slug_of(pub, issue)]):
        state = {"testing": "sending its subjects",
                 "waiting": f"decision due at {utc_minute(test.decide_at)}"
                            if test.decide_at else "waiting",
                 "finishing": "sending the winner to the rest", "done": "done",
                 "cancelled": f"cancelled ({test.last_error or 'send cancel'})"}[test.state]
        console.print(f"subject test {test.id} -> {test.segment}: {state}; {test.sample}% "
                      f"sample, judged by people's {test.measure}", markup=False,
                      highlight=False)
        figures = {row.get("subject"): row for row in test.figures or []}
        for index, subject in enumerate(test.subjects):
            row = figures.get(subject)
            shown = (f": {row['people']:,} of {row['reached']:,} people "
                     f"({row['rate'] * 100:.1f}%), {row['machine']:,} machines only"
                     if row else "")
            mark = " (winner)" if test.winner == index and test.decided_at else ""
            console.print(f"  {label(index)}{mark}: {subject}{shown}", markup=False,
                          highlight=False)
        if test.note:
            console.print(f"  decision: {test.note}", markup=False, highlight=False,
                          soft_wrap=True)
