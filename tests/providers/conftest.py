"""Provider fixtures: the test Dovecot for the bounce mailbox."""

from tests.mail_fixtures import bounce_mailbox, dovecot, dovecot_inbox_namespace  # noqa: F401
