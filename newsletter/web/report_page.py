"""report.html: one self-contained page (no scripts, no CDN) with the issue's engagement.

Charts are inline SVG made here: clicks per piece as bars (people, machines beside), opens and
clicks over the first 72 hours as lines, and the per-link table.
"""

from __future__ import annotations

import jinja2
from markupsafe import Markup, escape

from newsletter.events.report import HOURS, IssueReport

HUMAN, MACHINE, OPENS = "#0b5394", "#b8c2cc", "#2f855a"
MACHINE_TEXT = "#7b8794"


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("newsletter.web", "assets"),
                              autoescape=True, trim_blocks=True, lstrip_blocks=True)


def piece_bars(report: IssueReport, width: int = 640) -> Markup:
    """Horizontal bars: human clicks and machine clicks per piece ("no links" or "not
    measured" in words where a piece has no figures)."""
    rows = report.pieces
    top = max([max(p.clicks, p.machine_clicks) for p in rows] + [1])
    label_w, bar_h, gap = 220, 14, 14
    height = len(rows) * (2 * bar_h + gap) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="Clicks per piece">']
    scale = (width - label_w - 60) / top
    for i, piece in enumerate(rows):
        y = 10 + i * (2 * bar_h + gap)
        name = f"{piece.piece}. {piece.title}" if piece.piece else "Masthead and footer"
        if len(name) > 32:
            name = name[:31] + "…"
        parts.append(f'<text x="0" y="{y + bar_h + 4}" font-size="12">{escape(name)}</text>')
        if not piece.links or not piece.measured:
            why = "no links" if not piece.links else "not measured"
            parts.append(f'<text x="{label_w}" y="{y + bar_h + 4}" font-size="11" '
                         f'fill="{MACHINE_TEXT}">{why}</text>')
            continue
        for j, (value, colour) in enumerate(((piece.clicks, HUMAN),
                                             (piece.machine_clicks, MACHINE))):
            yy = y + j * bar_h
            w = max(value * scale, 1 if value else 0)
            parts.append(f'<rect x="{label_w}" y="{yy}" width="{w:.1f}" height="{bar_h - 2}" '
                         f'fill="{colour}"/>')
            parts.append(f'<text x="{label_w + w + 4:.1f}" y="{yy + bar_h - 3}" '
                         f'font-size="11">{value:,}</text>')
    y = height - 8
    parts.append(f'<rect x="{label_w}" y="{y - 9}" width="10" height="10" fill="{HUMAN}"/>'
                 f'<text x="{label_w + 14}" y="{y}" font-size="11">people</text>'
                 f'<rect x="{label_w + 70}" y="{y - 9}" width="10" height="10" fill="{MACHINE}"/>'
                 f'<text x="{label_w + 84}" y="{y}" font-size="11">machines</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def timeline(report: IssueReport, width: int = 640, height: int = 220) -> Markup:
    """Human opens and clicks per hour over the first 72 hours, as lines (measured ones)."""
    series = [(key, colour, key) for key, colour in (("opens", OPENS), ("clicks", HUMAN))
              if report.knows(key)]  # a series that was not measured is not drawn as zeros
    top = max([max(report.hourly.get(k, [0]) or [0]) for k, _, _ in series] + [1])
    left, bottom, plot_h = 40, height - 30, height - 50
    step = (width - left - 10) / (HOURS - 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="Opens and clicks over the first 72 hours">',
             f'<line x1="{left}" y1="{bottom}" x2="{width - 10}" y2="{bottom}" stroke="#52606d"/>',
             f'<text x="2" y="{bottom - plot_h + 4}" font-size="11">{top:,}</text>']
    for hour in range(0, HOURS + 1, 12):
        x = left + min(hour, HOURS - 1) * step
        parts.append(f'<text x="{x:.1f}" y="{bottom + 16}" font-size="11" '
                     f'text-anchor="middle">{hour}h</text>')
    for n, (key, colour, label) in enumerate(series):
        values = report.hourly.get(key, [0] * HOURS)
        points = " ".join(f"{left + i * step:.1f},{bottom - v / top * plot_h:.1f}"
                          for i, v in enumerate(values))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                     f'points="{points}"/>')
        x = left + 10 + n * 90
        parts.append(f'<rect x="{x}" y="4" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{x + 14}" y="13" font-size="11">{label} (people)</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def note_html(note: str) -> Markup:
    """A report note with its `backticked` commands and settings as <code>."""
    parts = note.split("`")
    return Markup("").join(Markup("<code>{}</code>").format(part) if i % 2 else escape(part)
                           for i, part in enumerate(parts))


def report_html(report: IssueReport) -> str:
    """The whole page, titled with the issue's subject."""
    from newsletter.core.reputation import limits_of, setting
    from newsletter.events.report_health import VERDICTS

    t = report.thresholds
    return _env().get_template("report.html").render(
        r=report, bars=piece_bars(report), lines=timeline(report),
        notes=[note_html(note) for note in report.notes],
        measured_series=any(report.knows(k) for k in ("opens", "clicks")),
        verdicts=VERDICTS, guard={"bounces": setting(t.bounce_pause),
                                  "complaints": setting(t.complaint_pause)},
        limits={"bounces": limits_of("bounces"), "complaints": limits_of("complaints")})
