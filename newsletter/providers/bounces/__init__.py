"""The bounce mailbox of SMTP sends: what comes back by mail, read and put into words.

- `verp`: the VERP envelope sender `bounces+<signed token>@<return path domain>` that names a
  send and its ledger row, and reading it back (tokens signed through newsletter.core.tokens);
- `imap`: the mailbox over IMAP (new messages, moving handled ones, flagging the rest);
- `classify`: one message -> `ProviderEvent`s (newsletter.providers.events) with `dsn` (RFC
  3464 delivery status notifications), `arf` (RFC 5965 complaint reports), flufl.bounce for
  the non-standard formats, and `autoreply` (out-of-office and vacation replies, ignored).

Nothing here touches the database: newsletter.events.mailbox applies what this package reads.
"""
