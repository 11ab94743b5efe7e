"""Amazon SES, both directions: sending through the SES v2 API (transport, answers, rate), its
account-level suppression list (suppressions), and its events as SNS delivers them over HTTPS
(sns: message signatures and subscription confirmation; events: SES event records in the
neutral vocabulary of newsletter.providers.events)."""
