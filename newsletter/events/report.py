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

from sqlalchemy import Connection, and_, case, column, distinct, func, literal, select, table

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
    hourly: dict[str, list[int]] = field(default_factory=dict)  # series -> 72 hourly counts
    started_at: dt.datetime | None = None

    def as_dict(self) -> dict:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat() if self.started_at else None
        for row, link in zip(data["links"], self.links, strict=True):
            row["label"] = link.label
        return data


def _hour(conn: Connection, start: dt.datetime):
    """SQL: whole hours between `start` and an event."""
    occurred = webhook_events.c.occurred_at
    if conn.dialect.name == "postgresql":
        return func.floor(func.extract("epoch", occurred - start) / 3600)
    naive = start.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
    return func.cast((func.julianday(occurred) - func.julianday(literal(naive))) * 24,
                     webhook_events.c.position.type)


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
    _timeline(conn, report)
    return report


def _aware(value) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _totals(conn: Connection, report: IssueReport) -> None:
    e = webhook_events.c
    human = e.machine.is_(False)
    query = select(
        func.sum(case((and_(e.event == "open", human), 1), else_=0)),
        func.sum(case((and_(e.event == "open", e.machine.is_(True)), 1), else_=0)),
        func.sum(case((and_(e.event == "click", human), 1), else_=0)),
        func.sum(case((and_(e.event == "click", e.machine.is_(True)), 1), else_=0)),
        func.count(distinct(case((and_(e.event == "open", human), e.email_key)))),
        func.count(distinct(case((and_(e.event == "click", human), e.email_key)))),
    ).where(e.send_id.in_(report.sends), e.event.in_(["open", "click"]))
    row = conn.execute(query).one()
    (report.opens, report.machine_opens, report.clicks, report.machine_clicks,
     report.human_openers, report.human_clickers) = (int(v or 0) for v in row)
    totals = select(*(func.coalesce(func.sum(engagement.c[n]), 0) for n in ENGAGEMENT_COUNTERS)
                    ).where(engagement.c.send_id.in_(report.sends))
    counts = dict(zip(ENGAGEMENT_COUNTERS, conn.execute(totals).one(), strict=True))
    report.bounces, report.complaints, report.unsubscribes = (
        int(counts["bounces"]), int(counts["complaints"]), int(counts["unsubscribes"]))


def _per_link(conn: Connection, report: IssueReport) -> None:
    e, lk = webhook_events.c, send_links.c
    links: dict[tuple[int, int], LinkFigures] = {}
    pieces: dict[int, PieceFigures] = {}
    rows = conn.execute(select(lk.piece, lk.link, lk.url, lk.title, lk.expert)
                        .where(lk.send_id.in_(report.sends))
                        .order_by(lk.send_id, lk.position))
    for piece, link, url, title, expert in rows:
        links.setdefault((piece, link), LinkFigures(piece, link, url))
        pieces.setdefault(piece, PieceFigures(piece, title, expert))
    joined = webhook_events.join(send_links, and_(lk.send_id == e.send_id,
                                                  lk.position == e.position))
    where = (e.send_id.in_(report.sends), e.event == "click")
    human = e.machine.is_(False)
    query = (select(lk.piece, lk.link,
                    func.sum(case((human, 1), else_=0)),
                    func.sum(case((human, 0), else_=1)),
                    func.count(distinct(case((human, e.email_key)))))
             .select_from(joined).where(*where).group_by(lk.piece, lk.link))
    for piece, link, clicks, machine, clickers in conn.execute(query):
        figures = links.get((piece, link))
        if figures:
            figures.clicks, figures.machine_clicks = int(clicks or 0), int(machine or 0)
            figures.human_clickers = int(clickers or 0)
    query = (select(lk.piece, func.count(distinct(e.email_key)))
             .select_from(joined).where(*where, human).group_by(lk.piece))
    clickers_of = dict(conn.execute(query).all())
    per_piece: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for figures in links.values():
        per_piece[figures.piece][0] += figures.clicks
        per_piece[figures.piece][1] += figures.machine_clicks
    for number, figures in pieces.items():
        figures.clicks, figures.machine_clicks = per_piece[number]
        figures.human_clickers = int(clickers_of.get(number, 0))
        figures.click_rate = (figures.human_clickers / report.recipients
                              if report.recipients else 0.0)
    report.pieces = sorted(pieces.values(), key=lambda p: (p.piece == 0, p.piece))
    report.links = sorted(links.values(), key=lambda f: (f.piece == 0, f.piece, f.link))


def _timeline(conn: Connection, report: IssueReport) -> None:
    e = webhook_events.c
    assert report.started_at is not None
    hour = _hour(conn, report.started_at).label("hour")
    query = (select(e.event, e.machine, hour, func.count())
             .where(e.send_id.in_(report.sends), e.event.in_(["open", "click"]),
                    e.occurred_at >= report.started_at,
                    e.occurred_at < report.started_at + dt.timedelta(hours=HOURS))
             .group_by(e.event, e.machine, hour))
    series = {name: [0] * HOURS for name in ("opens", "clicks", "machine_opens",
                                              "machine_clicks")}
    for event, machine, at, count in conn.execute(query):
        index = int(at or 0)
        if 0 <= index < HOURS:
            name = ("machine_" if machine else "") + ("opens" if event == "open" else "clicks")
            series[name][index] += int(count)
    report.hourly = series


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
