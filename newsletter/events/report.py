"""`newsletter report`: what people (not machines) did with an issue, piece by piece.

Every figure is computed in the database from `webhook_events` (opens and clicks with their
human-or-machine verdict, newsletter.events.classify), `send_links` (which piece each link
position belongs to) and `engagement` (per-send totals of bounces, complaints, unsubscribes,
kept when old events are pruned). Human figures come first; machine figures sit beside them.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import asdict, dataclass, field

from sqlalchemy import Connection, and_, bindparam, case, column, distinct, func, select, table

from newsletter.db.tables import ENGAGEMENT_COUNTERS, engagement, send_links, webhook_events

HOURS = 72
_sends = table("sends", column("id"), column("issue"), column("accepted"),
               column("created_at"), column("send_at"))


@dataclass
class LinkFigures:
    piece: int
    link: int
    url: str
    human_clickers: int = 0
    clicks: int = 0
    machine_clicks: int = 0

    @property
    def label(self) -> str:
        return f"{'piece ' + str(self.piece) if self.piece else 'chrome'}, link {self.link}"


@dataclass
class PieceFigures:
    piece: int  # 0: the chrome
    title: str
    expert: str
    human_clickers: int = 0
    clicks: int = 0
    machine_clicks: int = 0
    click_rate: float = 0.0  # human clickers / recipients


@dataclass
class IssueReport:
    issue: str
    sends: list[int]
    recipients: int
    opens: int = 0
    human_openers: int = 0
    machine_opens: int = 0
    clicks: int = 0
    human_clickers: int = 0
    machine_clicks: int = 0
    bounces: int = 0
    complaints: int = 0
    unsubscribes: int = 0
    pieces: list[PieceFigures] = field(default_factory=list)
    links: list[LinkFigures] = field(default_factory=list)
    hourly: dict[str, list[int]] = field(default_factory=dict)  # people's opens, clicks per hour
    started_at: dt.datetime | None = None

    def as_dict(self) -> dict:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat() if self.started_at else None
        for row, link in zip(data["links"], self.links, strict=True):
            row["label"] = link.label
        return data


def issue_report(conn: Connection, issue: str) -> IssueReport | None:
    """The report of every send of `issue`, or None when it was never sent."""
    sends = conn.execute(select(_sends.c.id, _sends.c.accepted, _sends.c.created_at,
                                _sends.c.send_at).where(_sends.c.issue == issue)).all()
    if not sends:
        return None
    ids = sorted(row.id for row in sends)
    starts = [_aware(row.send_at or row.created_at) for row in sends]
    report = IssueReport(issue, ids, sum(int(row.accepted or 0) for row in sends),
                         started_at=min(starts).replace(microsecond=0))  # events: whole s
    _totals(conn, report)
    _per_link(conn, report)
    return report


def _aware(value) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _totals(conn: Connection, report: IssueReport) -> None:
    """Opens and clicks (people, machines), the 72-hour timeline, and the per-send totals.

    Every query here reads only ix_webhook_events_report (send, event, machine, address, ...).
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
    totals = select(*(func.coalesce(func.sum(engagement.c[n]), 0) for n in ENGAGEMENT_COUNTERS)
                    ).where(engagement.c.send_id.in_(report.sends))
    counts = dict(zip(ENGAGEMENT_COUNTERS, conn.execute(totals).one(), strict=True))
    report.bounces, report.complaints, report.unsubscribes = (
        int(counts["bounces"]), int(counts["complaints"]), int(counts["unsubscribes"]))


def _per_link(conn: Connection, report: IssueReport) -> None:
    """Per link and per piece: clicks (people, machines) and the people who clicked."""
    e, lk = webhook_events.c, send_links.c
    links: dict[tuple[int, int], LinkFigures] = {}
    pieces: dict[int, PieceFigures] = {}
    where: dict[tuple[int, int], tuple[int, int]] = {}  # (send, position) -> (piece, link)
    rows = conn.execute(select(lk.send_id, lk.position, lk.piece, lk.link, lk.url, lk.title,
                               lk.expert).where(lk.send_id.in_(report.sends))
                        .order_by(lk.send_id, lk.position))
    for send_id, position, piece, link, url, title, expert in rows:
        links.setdefault((piece, link), LinkFigures(piece, link, url))
        pieces.setdefault(piece, PieceFigures(piece, title, expert))
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
        piece.clicks += figures.clicks
        piece.machine_clicks += figures.machine_clicks
    for number, figures in pieces.items():
        figures.human_clickers = per_piece.get(number, 0)
        figures.click_rate = (figures.human_clickers / report.recipients
                              if report.recipients else 0.0)
    report.pieces = sorted(pieces.values(), key=lambda p: (p.piece == 0, p.piece))
    report.links = sorted(links.values(), key=lambda f: (f.piece == 0, f.piece, f.link))


@dataclass
class ExpertFigures:
    expert: str
    issues: int = 0
    pieces: int = 0
    recipients: int = 0  # summed over the sends that carried a piece of theirs
    human_clickers: int = 0  # summed per issue
    clicks: int = 0
    machine_clicks: int = 0

    @property
    def click_rate(self) -> float:
        return self.human_clickers / self.recipients if self.recipients else 0.0


def expert_report(conn: Connection) -> list[ExpertFigures]:
    """Clicks on each expert's pieces, rolled up over every issue sent."""
    e, lk, s = webhook_events.c, send_links.c, _sends.c
    experts: dict[str, ExpertFigures] = {}
    carried = (select(lk.expert, s.issue, lk.piece, s.id, s.accepted)
               .select_from(send_links.join(_sends, s.id == lk.send_id))
               .where(lk.piece > 0).distinct())
    seen_pieces: dict[str, set] = defaultdict(set)
    seen_sends: dict[str, set] = defaultdict(set)
    for expert, issue, piece, send_id, accepted in conn.execute(carried):
        figures = experts.setdefault(expert, ExpertFigures(expert))
        seen_pieces[expert].add((issue, piece))
        if send_id not in seen_sends[expert]:
            seen_sends[expert].add(send_id)
            figures.recipients += int(accepted or 0)
    for expert, figures in experts.items():
        figures.pieces = len(seen_pieces[expert])
        figures.issues = len({issue for issue, _ in seen_pieces[expert]})
    joined = webhook_events.join(send_links, and_(lk.send_id == e.send_id,
                                                  lk.position == e.position)).join(
        _sends, s.id == e.send_id)
    human = e.machine.is_(False)
    per_issue = (select(lk.expert, s.issue,
                        func.sum(case((human, 1), else_=0)), func.sum(case((human, 0), else_=1)),
                        func.count(distinct(case((human, e.email_key)))))
                 .select_from(joined).where(e.event == "click", lk.piece > 0)
                 .group_by(lk.expert, s.issue))
    for expert, _issue, clicks, machine, clickers in conn.execute(per_issue):
        figures = experts.setdefault(expert, ExpertFigures(expert))
        figures.clicks += int(clicks or 0)
        figures.machine_clicks += int(machine or 0)
        figures.human_clickers += int(clickers or 0)
    return sorted(experts.values(), key=lambda f: (-f.human_clickers, f.expert))
