"""`newsletter report --by expert`: each expert's pieces rolled up over every issue sent.

Every piece a send carried counts, also a piece without links (it has no clicks to show, and
says so). People are counted per issue (someone mailed twice with `send --again` is one) and
summed over the expert's issues; clicks on sends whose clicks could not be counted are "not
measured" rather than 0.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, and_, case, distinct, func, select

from newsletter.db.ledger_tables import sends
from newsletter.db.tables import send_links, webhook_events
from newsletter.events.report_sends import people_reached, sends_of


@dataclass
class ExpertFigures:
    expert: str  # the expert's id
    name: str = ""
    issues: int = 0
    pieces: int = 0
    linked_pieces: int = 0  # pieces with at least one link
    recipients: int = 0  # people reached per issue that carried a piece of theirs, summed
    human_clickers: int = 0  # summed per issue
    clicks: int = 0
    machine_clicks: int = 0
    measured: bool = False  # whether any send of their pieces could count clicks

    @property
    def click_rate(self) -> float:
        return self.human_clickers / self.recipients if self.recipients else 0.0

    def as_row(self) -> dict:
        """The figures for JSON and CSV: clicks that were not measured are None."""
        known = self.measured and self.linked_pieces > 0
        return {"expert": self.expert, "name": self.name or self.expert,
                "issues": self.issues, "pieces": self.pieces, "recipients": self.recipients,
                "human_clickers": self.human_clickers if known else None,
                "clicks": self.clicks if known else None,
                "click_rate": round(self.click_rate, 4) if known else None,
                "machine_clicks": self.machine_clicks if known else None,
                "pieces_with_links": self.linked_pieces}


def expert_report(conn: Connection, names: Mapping[str, str] | None = None
                  ) -> list[ExpertFigures]:
    """Every expert with a piece in a send, most people who clicked first.

    `names` (id -> name) names the experts of sends that did not record their names."""
    names = names or {}
    experts: dict[str, ExpertFigures] = {}
    pieces: dict[str, set[tuple[str, int]]] = defaultdict(set)  # expert -> (issue, piece)
    carried: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    for send in sends_of(conn):
        for info in send.pieces:
            figures = experts.setdefault(info.expert, ExpertFigures(info.expert))
            figures.name = info.expert_name or figures.name or names.get(info.expert, "")
            figures.measured = figures.measured or send.measures_clicks
            pieces[info.expert].add((send.issue, info.piece))
            carried[info.expert][send.issue].add(send.id)
    linked = _linked_pieces(conn)
    reached: dict[frozenset[int], int] = {}  # people reached by a set of sends of one issue
    for expert, figures in experts.items():
        by_issue = carried[expert]
        figures.pieces, figures.issues = len(pieces[expert]), len(by_issue)
        figures.linked_pieces = sum(
            1 for issue, piece in pieces[expert]
            if any((send_id, piece) in linked for send_id in by_issue[issue]))
        for send_ids in by_issue.values():
            key = frozenset(send_ids)
            if key not in reached:
                reached[key] = people_reached(conn, key)
            figures.recipients += reached[key]
    _clicks(conn, experts)
    return sorted(experts.values(), key=lambda f: (-f.human_clickers, f.name or f.expert))


def _linked_pieces(conn: Connection) -> set[tuple[int, int]]:
    """(send, piece) of every piece with a link."""
    lk = send_links.c
    return {(int(send_id), int(piece)) for send_id, piece in conn.execute(
        select(lk.send_id, lk.piece).where(lk.piece > 0).distinct())}


def _clicks(conn: Connection, experts: dict[str, ExpertFigures]) -> None:
    """Clicks, machine clicks and the people who clicked, per expert and issue, summed."""
    e, lk, s = webhook_events.c, send_links.c, sends.c
    joined = webhook_events.join(send_links, and_(lk.send_id == e.send_id,
                                                  lk.position == e.position)).join(
        sends, s.id == e.send_id)
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
        figures.measured = True  # clicks were recorded, whatever the send said
