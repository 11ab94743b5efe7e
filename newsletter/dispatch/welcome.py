"""The welcome message: once per person, ever, to every confirmed sign-up, through the ledger.

`welcome_round()` is what `serve` runs every `welcome.every` and right after a confirmation
(and `subscribers add --welcome` once): for each edition of the welcome (`issues/_welcome/`
and its translations), it resumes the welcome send a crashed process left, then sends the
edition to its readers among the sign-ups waiting (newsletter.audience.welcome: confirmed in
the last `within_days`) whom the welcome's issue family has not reached. Each is an ordinary
send of the ledger, to the segment label `welcome`: snapshotted in one transaction (the unique
index lets one process at a time make it), consent checked again at hand-over, exactly once
through a kill (dispatch.ledger). `status _welcome` lists them and `report _welcome` covers
them like an issue's.

The message is the welcome's folder dated the day it goes out, with the latest sent issue
linked or carried whole (`welcome: {latest: link|whole}`, newsletter.compose.welcome); it
passes the quality gate like any send (once per content, per process), and sign-off, when
newsletter.yaml asks for it, is of the folder as written. A welcome send whose only
unsettled recipients have an unknown outcome (a kill while a message was in flight on a
transport that cannot tell) is given up with them counted as reached: a welcome is never sent
twice.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, select

from newsletter.audience.model import Status
from newsletter.audience.segments import not_paused
from newsletter.audience.welcome import waiting
from newsletter.compose.editions import Edition, edition_group
from newsletter.compose.i18n import base_language
from newsletter.compose.publication import is_message
from newsletter.compose.welcome import Latest, Welcome
from newsletter.core.errors import InputError, NewsletterError, Problem
from newsletter.db.ledger_tables import sends
from newsletter.db.tables import subscribers
from newsletter.dispatch.artifact import Artifact
from newsletter.dispatch.editions import default_edition, reader_condition
from newsletter.dispatch.execute import SendResult, execute
from newsletter.dispatch.ledger import Ledger, SendBusy, SendPaused, SendRow, is_alive
from newsletter.dispatch.ledger.reached import recipients_of
from newsletter.dispatch.plan import family_of, open_ledger, plan_send
from newsletter.dispatch.send_plan import SendPlan
from newsletter.providers import make_transport

if TYPE_CHECKING:
    from newsletter.compose import Build
    from newsletter.compose.publication import Publication

#: the segment label of every welcome send in the ledger
WELCOME_SEGMENT = "welcome"
#: content hashes of welcome messages that passed the quality gate in this process
_PASSED: set[tuple[str, str]] = set()


#: `hooks(plan)`: execute()'s keyword hooks for a plan (newsletter.web.send_hooks)
Hooks = Callable[[SendPlan], dict[str, Any]]


@dataclass(frozen=True)
class Run:
    """Executes a plan with the round's stop event and hooks."""

    stop: threading.Event | None
    hooks: Hooks | None

    def __call__(self, plan: SendPlan) -> SendResult | None:
        return execute(plan, stop=self.stop, **(self.hooks(plan) if self.hooks else {}))


@dataclass
class WelcomeRound:
    """What one round did: the sends it ran (or resumed), and why it did not do more."""

    sends: list[SendRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  # editions another process is sending

    @property
    def welcomed(self) -> int:
        return sum(s.accepted for s in self.sends)


def welcome_editions(pub: Publication) -> list[Edition]:
    """The welcome's editions (its folder first); InputError when there is no welcome."""
    config = pub.config.welcome
    if config is None:
        raise InputError(Problem(pub.root / "newsletter.yaml", None, "there is no welcome: in "
                                 "newsletter.yaml (see docs/welcome.md)"))
    editions = edition_group(pub, config.issue)
    if not editions:
        raise InputError(Problem(pub.root / "issues" / config.issue, None,
                                 f"no welcome message: write issues/{config.issue}/issue.yaml "
                                 f"(`newsletter new {config.issue}`)"))
    return editions


def latest_issue(pub: Publication, ledger: Ledger, language: str) -> Latest | None:
    """The latest issue a send reached people with (never a message such as the welcome),
    as its edition in `language` when one was sent; None when nothing was sent yet or
    `welcome.latest` is `none`."""
    config = pub.config.welcome
    if config is None or config.latest == "none":
        return None
    query = (select(sends.c.issue, sends.c.subject).where(
        sends.c.accepted > 0, ~sends.c.issue.startswith("_", autoescape=True))  # is_message
        .order_by(sends.c.id.desc()))
    with ledger.engine.connect() as conn:
        newest = conn.execute(query.limit(1)).first()
        if newest is None:
            return None
        chosen = newest
        languages = {e.slug: e.language for e in edition_group(pub, newest.issue)}
        mine = [slug for slug, lang in languages.items()
                if base_language(lang) == base_language(language)]
        if mine:
            chosen = conn.execute(query.where(sends.c.issue.in_(mine)).limit(1)).first() \
                or chosen
    return Latest(chosen.issue, chosen.subject, whole=config.latest == "whole")


def _readers(pub: Publication, edition: Edition, editions: list[Edition],
             now: dt.datetime) -> Any:
    """WHERE clause over subscribers: active, unpaused people waiting for this edition."""
    config = pub.config.welcome
    assert config is not None
    since = now - dt.timedelta(days=config.within_days)
    condition = and_(subscribers.c.status == Status.ACTIVE.value, not_paused(now),
                     waiting(since))
    if len(editions) > 1:
        condition = and_(condition, reader_condition(edition, editions,
                                                     default_edition(pub, editions)))
    return condition


def _message(pub: Publication, ledger: Ledger, slug: str, language: str, transport: str,
             family: tuple[str, ...], now: dt.datetime) -> tuple[Artifact, Build]:
    """The edition's welcome of today, past the quality gate and sign-off."""
    from newsletter.checks import require_passing
    from newsletter.compose import build_issue
    from newsletter.dispatch.approval import require_signoff

    welcome = Welcome(now.date(), latest_issue(pub, ledger, language))
    build = build_issue(pub, slug, welcome=welcome)
    if (str(pub.root), build.content_hash) not in _PASSED:
        require_passing(pub, build)
        _PASSED.add((str(pub.root), build.content_hash))
    approved = build_issue(pub, slug) if pub.config.approval.required else build
    require_signoff(pub, approved, transport=transport)
    return Artifact.freeze(pub, build, family), build


def welcome_round(pub: Publication, *, ledger: Ledger | None = None,
                  transport: str | None = None, stop: threading.Event | None = None,
                  hooks: Hooks | None = None, now: dt.datetime | None = None) -> WelcomeRound:
    """Resume what a crash left, then welcome everyone waiting, edition by edition (see the
    module's docstring). `hooks(plan)`: execute()'s `prepare` and `link_urls` for a plan
    (click tracking: newsletter.web.send_hooks)."""
    editions = welcome_editions(pub)
    config = pub.config.welcome
    assert config is not None
    ledger = ledger or open_ledger(pub)
    chosen = transport or config.transport or pub.settings.transport
    family = family_of(pub, editions[0].slug, ledger)
    done = WelcomeRound()
    run = Run(stop, hooks)
    for edition in editions:
        active = ledger.sends.active(edition.slug)
        if active is not None and not _resume(pub, ledger, active, done, run):
            continue
        now_ = now or dt.datetime.now(dt.UTC)
        members = _readers(pub, edition, editions, now_)
        with ledger.engine.connect() as conn:
            count = conn.execute(select(func.count()).select_from(subscribers).where(
                recipients_of(conn, family, members, "once"))).scalar_one()
        if not count:
            continue
        artifact, build = _message(pub, ledger, edition.slug, edition.language, chosen, family,
                                   now_)
        sender = make_transport(chosen, pub.settings, pub.config)
        plan = SendPlan(pub=pub, slug=edition.slug, artifact=artifact, build=build,
                        segment=WELCOME_SEGMENT, transport=sender, ledger=ledger,
                        members=members, send=None, count=count,
                        family=tuple(dict.fromkeys(family + artifact.family)))
        sender.preflight()
        try:
            result = run(plan)
        except SendBusy as exc:  # another process made its welcome send first
            done.busy.append(f"{edition.slug}: {exc}")
            continue
        if result is not None:
            done.sends.append(result.send)
            if not result.ok:
                done.notes.append(f"welcome send #{result.send.id} stopped: "
                                  f"{result.report.stopped or 'interrupted'}")
    return done


def _resume(pub: Publication, ledger: Ledger, active: SendRow, done: WelcomeRound,
            run: Run) -> bool:
    """Carry on a welcome send a crash (or a stop) left; True when it is settled, so the
    edition may welcome the people who confirmed since."""
    if active.owner and is_alive(active.owner, active.heartbeat_at):
        done.busy.append(f"{active.issue}: send #{active.id} is under way in {active.owner}")
        return False
    try:
        plan = plan_send(pub, active.issue, active.segment)
    except SendPaused as exc:  # the reputation guard holds it: for a person to look at
        done.notes.append(f"{active.issue}: {exc} (`newsletter send {active.issue} --resume`)")
        return False
    plan.transport.preflight()
    try:
        result = run(plan)
    except SendBusy as exc:
        done.busy.append(f"{active.issue}: {exc}")
        return False
    final = result.send if result is not None else ledger.sends.get(active.id)
    if result is not None:
        done.sends.append(final)
    if final.state == "stopped" and final.pending == 0 and final.unknown:
        ledger.sends.cancel(final.id, f"{final.unknown} welcome message(s) with an unknown "
                                      "outcome (in flight when a process stopped) are counted "
                                      "as delivered: a welcome is never sent twice")
        done.notes.append(f"welcome send #{final.id}: {final.unknown} unknown outcome(s) "
                          "counted as delivered")
        return True
    if final.state != "completed":
        done.notes.append(f"welcome send #{final.id} stopped: {final.last_error or 'stopped'}")
        return False
    return True


def waiting_count(pub: Publication, ledger: Ledger | None = None,
                  now: dt.datetime | None = None) -> int:
    """How many confirmed sign-ups wait for the welcome now (every edition)."""
    editions = welcome_editions(pub)
    ledger = ledger or open_ledger(pub)
    family = family_of(pub, editions[0].slug, ledger)
    members = _readers(pub, editions[0], editions[:1], now or dt.datetime.now(dt.UTC))
    with ledger.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(subscribers).where(
            recipients_of(conn, family, members, "once"))).scalar_one()


def refuse_plain_send(pub: Publication, slug: str) -> None:
    """`send _welcome --segment ...` is refused: the welcome goes to sign-ups, once each."""
    if is_message(slug):
        raise NewsletterError(f"{slug} is a message, not an issue: `serve` sends the welcome to "
                              "each confirmed sign-up (and `subscribers add --welcome`)")

