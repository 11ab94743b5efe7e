"""`newsletter report`: what people (not machines) did with an issue, piece by piece.

Every figure is computed in the database from `webhook_events` (opens and clicks with their
human-or-machine verdict, newsletter.events.classify), `send_links` (which piece each link
position belongs to), `send_recipients` (the people reached) and `engagement` (per-send
bounces, complaints, unsubscribes, kept when old events are pruned). Human figures come first;
machine figures sit beside them.

A report says what it knows: every piece the sends carried is listed (one without links says
so), people are counted once however often they were mailed, and a figure the transport or the
settings could not measure (opens after an outbox or SMTP send, clicks with tracking off) is
"not measured", not 0; `notes` say why.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from sqlalchemy import Connection, and_, bindparam, case, distinct, func, select

from newsletter.core.personalise import PLACEHOLDER
from newsletter.core.reputation import Thresholds
from newsletter.db.tables import engagement, send_links, webhook_events
from newsletter.events.report_health import SendHealth, send_health
from newsletter.events.report_sends import SendFacts, people_reached, personal_link, sends_of
from newsletter.events.subject_figures import tests_of

HOURS = 72
#: the per-send counters shown, each counted in people, and the provider event behind it
COUNTERS = {"bounces": "bounce", "complaints": "complaint", "unsubscribes": "unsubscribe"}


@dataclass
class LinkFigures:
    piece: int
    link: int
    url: str
    human_clickers: int = 0
    clicks: int = 0
    machine_clicks: int = 0
    measured: bool = True

    @property
    def label(self) -> str:
        return f"{'piece ' + str(self.piece) if self.piece else 'chrome'}, link {self.link}"

    @property
    def personal(self) -> str | None:
        """What the link is when its URL differs per recipient (e.g. "unsubscribe link")."""
        return personal_link(self.url)

    @property
    def shown_url(self) -> str:
        """The URL, or for a personal link what it is (never its placeholder)."""
        return f"personal {self.personal} (one per recipient)" if self.personal else self.url


@dataclass
class PieceFigures:
    piece: int  # 0: the chrome
    title: str
    expert: str  # the expert's id ("" for the chrome)
    expert_name: str = ""
    links: int = 0
    human_clickers: int = 0
    clicks: int = 0
    machine_clicks: int = 0
    click_rate: float = 0.0  # human clickers / people reached
    measured: bool = True  # False: clicks on its links could not be counted

    @property
    def name(self) -> str:
        """The expert's name (their id when no name is known)."""
        return self.expert_name or self.expert


@dataclass
class IssueReport:
    issue: str
    sends: list[int]
    recipients: int  # people reached: distinct addresses a transport accepted
    subject: str = ""
    messages: int = 0  # messages accepted (more than `recipients` after `send --again`)
    opens: int = 0
    human_openers: int = 0
    machine_opens: int = 0
    clicks: int = 0
    human_clickers: int = 0
    machine_clicks: int = 0
    bounces: int = 0  # people, as the provider reported them
    complaints: int = 0
    unsubscribes: int = 0
    pieces: list[PieceFigures] = field(default_factory=list)
    links: list[LinkFigures] = field(default_factory=list)
    hourly: dict[str, list[int]] = field(default_factory=dict)  # people's opens, clicks per hour
    started_at: dt.datetime | None = None
    measured: dict[str, bool] = field(default_factory=dict)  # opens, clicks, bounces, ...
    notes: list[str] = field(default_factory=list)  # why a figure is not measured
    health: list[SendHealth] = field(default_factory=list)  # each send's rates
    thresholds: Thresholds = field(default_factory=Thresholds)  # the guard's, now
    #: each subject test of the issue: its subjects' figures, winner and note
    #: (newsletter.events.subject_figures.tests_of)
    subject_tests: list[dict] = field(default_factory=list)

    def knows(self, what: str) -> bool:
        """Whether `what` (opens, clicks, bounces, complaints, unsubscribes) was measured."""
        return self.measured.get(what, True)

    def as_dict(self) -> dict:
        """Everything, as JSON: a figure that was not measured is null, never 0."""
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat() if self.started_at else None
        if not self.knows("opens"):
            data.update(opens=None, human_openers=None, machine_opens=None)
            data["hourly"]["opens"] = None
        if not self.knows("clicks"):
            data.update(clicks=None, human_clickers=None, machine_clicks=None)
            data["hourly"]["clicks"] = None
        for name in COUNTERS:
            if not self.knows(name):
                data[name] = None
        for row, piece in zip(data["pieces"], self.pieces, strict=True):
            row["expert_name"] = piece.name
            if not piece.measured or not piece.links:
                row.update(human_clickers=None, clicks=None, machine_clicks=None,
                           click_rate=None)
        for row, link in zip(data["links"], self.links, strict=True):
            row.update(label=link.label, personal=link.personal)
            if link.personal:
                row["url"] = ""
            if not link.measured:
                row.update(human_clickers=None, clicks=None, machine_clicks=None)
        return data


def issue_report(conn: Connection, issue: str,
                 expert_names: Mapping[str, str] | None = None, *,
                 thresholds: Thresholds | None = None, mailbox: bool = False
                 ) -> IssueReport | None:
    """The report of every send of `issue`, or None when it was never sent.

    `expert_names` (id -> name) names the experts of sends that did not record their names;
    `thresholds` (reputation: in newsletter.yaml) judge each send's health; `mailbox`: the
    publication reads a bounce mailbox, so its SMTP sends report bounces and complaints.
    """
    sends = sends_of(conn, issue)
    if not sends:
        return None
    for send in sends:
        send.mailbox = mailbox
    ids = [s.id for s in sends]
    report = IssueReport(issue, ids, people_reached(conn, ids), subject=subject_of(sends),
                         messages=sum(s.accepted for s in sends),
                         started_at=min(s.started for s in sends).replace(microsecond=0))
    _totals(conn, report)
    _per_link(conn, report, sends, expert_names or {})
    _measured(report, sends)
    report.thresholds = thresholds or Thresholds()
    report.health = send_health(conn, sends, report.thresholds)
    report.subject_tests = tests_of(conn, issue)
    return report


def subject_of(sends: list[SendFacts]) -> str:
    """The latest send's subject, a personal placeholder shown by its fallback or its name."""
    subject = sends[-1].subject if sends else ""
    return PLACEHOLDER.sub(lambda m: m.group(2) or f"[{m.group(1)}]", subject)


def _totals(conn: Connection, report: IssueReport) -> None:
    """Opens and clicks (people, machines), the 72-hour timeline, and the per-send counters.

    Every event query here reads only ix_webhook_events_report (send, event, machine, address,
    ...) or ix_webhook_events_timeline.
    """
    e = webhook_events.c
    of_sends = (e.send_id.in_(report.sends), e.event.in_(["open", "click"]))
    for event, machine, count in conn.execute(select(e.event, e.machine, func.count())
                                              .where(*of_sends).group_by(e.event, e.machine)):
        name = ("machine_" if machine else "") + ("opens" if event == "open" else "clicks")
        setattr(report, name, getattr(report, name) + int(count))
    # the timeline shows people only: one range count per hour and series, each read from
    # ix_webhook_events_timeline alone (grouping by hour would sort every event)
    assert report.started_at is not None
    first = report.started_at.replace(minute=0, second=0, microsecond=0)
    count = (select(func.count()).where(
        e.send_id.in_(report.sends), e.event == bindparam("kind"), e.machine.is_(False),
        e.occurred_at >= bindparam("since", type_=e.occurred_at.type),
        e.occurred_at < bindparam("until", type_=e.occurred_at.type)))
    series = {"opens": [0] * HOURS, "clicks": [0] * HOURS}
    for kind, name in (("open", "opens"), ("click", "clicks")):
        if not getattr(report, name):
            continue
        for hour in range(HOURS):
            since = first + dt.timedelta(hours=hour)
            series[name][hour] = int(conn.execute(count, {
                "kind": kind, "since": since,
                "until": since + dt.timedelta(hours=1)}).scalar_one())
    report.hourly = series
    for event, target in (("open", "human_openers"), ("click", "human_clickers")):
        people = select(func.count(distinct(e.email_key))).where(
            e.send_id.in_(report.sends), e.event == event, e.machine.is_(False))
        setattr(report, target, int(conn.execute(people).scalar_one() or 0))
    g = engagement.c
    people = [func.count(distinct(case((g[name] > 0, g.email_key)))) for name in COUNTERS]
    counts = conn.execute(select(*people).where(g.send_id.in_(report.sends))).one()
    for name, value in zip(COUNTERS, counts, strict=True):
        setattr(report, name, int(value or 0))


def _per_link(conn: Connection, report: IssueReport, sends: list[SendFacts],
              names: Mapping[str, str]) -> None:
    """Every piece the sends carried; per link and piece: clicks (people, machines) and the
    people who clicked."""
    e, lk = webhook_events.c, send_links.c
    links: dict[tuple[int, int], LinkFigures] = {}
    pieces: dict[int, PieceFigures] = {0: PieceFigures(0, "", "")}
    for send in reversed(sends):  # the latest send's title wins after an edit
        for info in send.pieces:
            pieces.setdefault(info.piece, PieceFigures(
                info.piece, info.title, info.expert,
                info.expert_name or names.get(info.expert, "")))
    where: dict[tuple[int, int], tuple[int, int]] = {}  # (send, position) -> (piece, link)
    rows = conn.execute(select(lk.send_id, lk.position, lk.piece, lk.link, lk.url, lk.title,
                               lk.expert).where(lk.send_id.in_(report.sends))
                        .order_by(lk.send_id, lk.position))
    for send_id, position, piece, link, url, title, expert in rows:
        links.setdefault((piece, link), LinkFigures(piece, link, url))
        pieces.setdefault(piece, PieceFigures(piece, title, expert, names.get(expert, "")))
        where[(send_id, position)] = (piece, link)
    clicks = (select(e.send_id, e.position, e.machine, func.count())
              .where(e.send_id.in_(report.sends), e.event == "click")
              .group_by(e.send_id, e.machine, e.position))
    for send_id, position, machine, count in conn.execute(clicks):
        place = where.get((send_id, position))
        if place is None:
            continue  # a click on a link we cannot place (no position)
        figures = links[place]
        if machine:
            figures.machine_clicks += int(count)
        else:
            figures.clicks += int(count)
    human_clicks = (e.send_id.in_(report.sends), e.event == "click", e.machine.is_(False))
    per_link: dict[tuple[int, int], int] = defaultdict(int)
    people = (select(e.send_id, e.position, func.count(distinct(e.email_key)))
              .where(*human_clicks).group_by(e.send_id, e.position))
    for send_id, position, count in conn.execute(people):
        place = where.get((send_id, position))
        if place is not None:  # a link in two sends of the issue: people counted per send
            per_link[place] += int(count)
    per_piece: dict[int, int] = {}
    if where:  # people per piece, counted once across its links: the piece computed in SQL
        piece = case(*((and_(e.send_id == send_id, e.position == position), place[0])
                       for (send_id, position), place in where.items()), else_=-1)
        query = (select(piece.label("piece"), func.count(distinct(e.email_key)))
                 .where(*human_clicks).group_by("piece"))
        per_piece = {int(number): int(count) for number, count in conn.execute(query)}
    for place, figures in links.items():
        figures.human_clickers = per_link.get(place, 0)
        piece = pieces[figures.piece]
        piece.links += 1
        piece.clicks += figures.clicks
        piece.machine_clicks += figures.machine_clicks
    for number, figures in pieces.items():
        figures.human_clickers = per_piece.get(number, 0)
        figures.click_rate = (figures.human_clickers / report.recipients
                              if report.recipients else 0.0)
    if not pieces[0].links:
        del pieces[0]  # no chrome links at all: nothing to say about the chrome
    report.pieces = sorted(pieces.values(), key=lambda p: (p.piece == 0, p.piece))
    report.links = sorted(links.values(), key=lambda f: (f.piece == 0, f.piece, f.link))


def _measured(report: IssueReport, sends: list[SendFacts]) -> None:
    """What the sends could measure, each figure's verdict and the notes that explain it.

    A figure counts as measured when one of the sends could measure it, or when events of it
    were recorded all the same (e.g. SMTP through a provider's relay that reports by webhook).
    """
    def which(found: list[SendFacts]) -> str:
        names = sorted({"SMTP" if s.transport == "smtp" else s.transport for s in found})
        return " and ".join(names) + (" sends" if len(found) != 1 else " send")

    def numbers(found: list[SendFacts]) -> str:
        return ", ".join(f"#{s.id}" for s in found)

    blind = [s for s in sends if not s.reports("open")]
    report.measured["opens"] = len(blind) < len(sends) or bool(report.opens
                                                               + report.machine_opens)
    if not report.knows("opens"):
        report.notes.append(f"Opens are not measured: {which(blind)} report no opens (the "
                            "email carries no tracking pixel).")
    elif blind:
        report.notes.append(f"Opens of the {which(blind)} ({numbers(blind)}) are not measured.")
    untracked = [s for s in sends if not s.measures_clicks]
    report.measured["clicks"] = (len(untracked) < len(sends)
                                 or bool(report.clicks + report.machine_clicks))
    if not report.knows("clicks"):
        report.notes.append(f"Clicks are not measured: click tracking was off and "
                            f"{which(untracked)} report no clicks (turn it on with "
                            "`tracking: {clicks: true}` in newsletter.yaml).")
    elif untracked:
        report.notes.append(f"Clicks of the {which(untracked)} ({numbers(untracked)}) are not "
                            "measured: click tracking was off.")
    own_only = not any(s.reports("click") for s in sends)  # only our redirects count clicks
    for link in report.links:
        untrackable = own_only and (link.personal is not None
                                    or not link.url.startswith(("https://", "http://")))
        link.measured = ((report.knows("clicks") and not untrackable)
                         or bool(link.clicks + link.machine_clicks))
    for piece in report.pieces:
        piece.measured = any(link.measured for link in report.links if link.piece == piece.piece)
    silent = [name for name, event in COUNTERS.items()
              if not any(s.reports(event) for s in sends) and not getattr(report, name)]
    for name in COUNTERS:
        report.measured[name] = name not in silent
    if silent:
        report.notes.append(f"{', '.join(silent).capitalize()} are not counted: {which(sends)} "
                            "report none back (messages refused at hand-over are in "
                            "`newsletter status`).")
