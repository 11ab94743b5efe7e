"""Draft: the placeholder texts `newsletter init` and `newsletter new` write are errors while
they are still there (an untouched scaffold must not pass the gate).

The texts themselves live in newsletter.compose.scaffold, next to the code that writes them.
"""

from __future__ import annotations

from newsletter.checks.model import ERROR, Context, Finding
from newsletter.compose import scaffold


def _flat(text: str) -> str:
    return " ".join(text.split()).casefold()


def _config_line(ctx: Context, needle: str) -> tuple[str, int | None]:
    """newsletter.yaml and the line holding `needle` there."""
    settings = str(ctx.pub.root / "newsletter.yaml")
    for source in ctx.sources:
        if str(source.path) == settings:
            return settings, source.find(needle)
    return settings, None


def check_issue_draft(ctx: Context) -> list[Finding]:
    """The new issue's preheader, and each piece's placeholder headline and body."""
    issue = ctx.build.issue
    manifest = str(issue.folder / "issue.yaml")
    findings = []
    if _flat(issue.manifest.preheader) == _flat(scaffold.DRAFT_PREHEADER):
        findings.append(Finding(
            ERROR, "draft.preheader",
            "the preheader is still the placeholder `newsletter new` wrote",
            "write the line inboxes show after the subject (or remove `preheader:`)",
            file=manifest, line=issue.source.line_of(("preheader",)),
        ))
    marker = scaffold.DRAFT_BODY.split(":")[0]  # "Write the piece here in Markdown"
    for piece in issue.pieces:
        path = str(piece.path)
        if _flat(piece.meta.title) == _flat(scaffold.DRAFT_TITLE):
            findings.append(Finding(
                ERROR, "draft.title", "the headline is still the placeholder "
                f"'{scaffold.DRAFT_TITLE}'", "write the piece's headline in `title:`",
                file=path, line=piece.front.line_of(("title",)),
            ))
        if _flat(marker) in _flat(piece.body):
            offset = next((n for n, line in enumerate(piece.body.splitlines())
                           if marker in line), 0)
            findings.append(Finding(
                ERROR, "draft.body", "the piece still holds the placeholder text "
                "'Write the piece here in Markdown…'", "write the piece (or delete that "
                "paragraph)", file=path, line=piece.body_line + offset,
            ))
        if piece.meta.expert == scaffold.DRAFT_EXPERT and \
                _flat(piece.expert.name) == _flat(scaffold.DRAFT_EXPERT_NAME):
            findings.append(Finding(
                ERROR, "draft.expert", f"the piece is by the placeholder expert "
                f"{scaffold.DRAFT_EXPERT_NAME} ('{scaffold.DRAFT_EXPERT}' from "
                "`newsletter init`)", "add the real author under experts: in newsletter.yaml "
                "and name them in the piece's `expert:`",
                file=path, line=piece.front.line_of(("expert",)),
            ))
    return findings


def check_config_draft(ctx: Context) -> list[Finding]:
    """The placeholder postal address `newsletter init` wrote into newsletter.yaml."""
    if _flat(ctx.pub.config.address) != _flat(scaffold.DRAFT_ADDRESS):
        return []
    file, line = _config_line(ctx, "address:")
    return [Finding(
        ERROR, "draft.address", f"the postal address is still the placeholder "
        f"'{scaffold.DRAFT_ADDRESS}'", "set address: in newsletter.yaml to the "
        "organisation's real postal address (anti-spam law requires it in every email)",
        file=file, line=line,
    )]


def check_draft(ctx: Context) -> list[Finding]:
    return check_issue_draft(ctx) + check_config_draft(ctx)
