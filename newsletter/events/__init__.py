"""The public side's data work: provider events, suppressions, sign-ups and engagement counts.

Modules: `policy` (what each provider event or suppression means for a subscriber: the one
policy), `statuses` (the ladder that lets a status move), `apply` (a batch of neutral events in
one transaction), `suppressions` (applying a provider's suppression lists), `mailbox` (the
bounce mailbox's events), `optin` (double opt-in and unsubscribe by token), `mailer` (the
confirmation mail), `stats` (engagement per send). Parsing and verifying a provider's events,
and calling its API, is its own module's job under newsletter.providers. Nothing here imports
the web stack or dispatch.
"""
