"""Drafting an issue from the institute's own website (`newsletter new SLUG --from-feed URL`).

The stages, one module each: `fetch` (polite, bounded HTTP) -> `feed` (feedparser: the entries
since a date) -> `article` (trafilatura: a page's main text, authors, Open Graph picture) ->
`experts` (an author's expert id) -> `text` (the opening, as Markdown that is only text) ->
`issue` (the pieces, manifest and hero) -> `folder` (written at once, never over an editor's
edits). It writes issue files and knows nothing of sending: when "since" is the last send, the
CLI asks the ledger and passes the date down.
"""

from newsletter.compose.draft.issue import Draft, DraftedPiece, DraftRequest, draft_issue

__all__ = ["Draft", "DraftRequest", "DraftedPiece", "draft_issue"]
