"""What each sample in bounce_samples/ is, written by hand from the message itself (shared
by the classifier's tests and the end-to-end mailbox tests)."""

from __future__ import annotations

from newsletter.providers.events import Bounce, Kind

#: the secret the samples' VERP tokens are signed with, and their send
SECRET = "bounce-samples-secret-0123456789abcdef"
SEND_ID = 7
RETURN_PATH = "bounces@news.example.org"

#: ledger row id -> the address that row mailed
ROWS = {
    101: "amelia.hart@example.org", 102: "b.okonkwo@example.org", 103: "chen.wei@example.org",
    104: "dara.nolan@example.org", 105: "esme.laurent@example.org",
    106: "farid.nasser@example.org", 107: "greta.lind@example.org",
    108: "hugo.brandt@example.org", 109: "ines.duarte@example.org",
    110: "jonas.berg@example.org", 111: "kai.moreau@example.org", 112: "lena.vogel@example.org",
    113: "mara.quinn@example.org", 114: "nils.ek@example.org", 115: "omar.saleh@example.org",
    116: "p.castellano@example.org",
}

#: sample prefix -> (outcome, format starts with, attribution,
#:                   [(kind, bounce, address as read, ledger row)])
EXPECTED = {
    "01": ("events", "DSN", "verp", [(Kind.BOUNCED, Bounce.HARD, ROWS[101], 101)]),
    "02": ("events", "non-standard", "message-id", [(Kind.BOUNCED, Bounce.HARD, ROWS[102], 102)]),
    # the alias the mail was forwarded to bounced; VERP names the address we mailed
    "03": ("events", "DSN", "verp", [(Kind.BOUNCED, Bounce.HARD, "cwei@corp.example.org", 103)]),
    "04": ("events", "DSN", "verp", [(Kind.BOUNCED, Bounce.HARD, ROWS[104], 104)]),
    # Yahoo redacts the recipient: only the VERP address in Return-Path names them
    "05": ("events", "ARF", "verp", [(Kind.COMPLAINED, None, "", 105)]),
    # SES puts its own Message-ID in the returned headers: no link to the send
    "06": ("events", "DSN", "none", [(Kind.BOUNCED, Bounce.HARD, ROWS[106], None)]),
    "07": ("events", "non-standard", "verp", [(Kind.BOUNCED, Bounce.HARD, ROWS[107], 107)]),
    "08": ("events", "DSN", "message-id", [(Kind.BOUNCED, Bounce.HARD, ROWS[108], 108)]),
    "09": ("events", "DSN", "verp", [(Kind.BOUNCED, Bounce.SOFT, ROWS[109], 109)]),
    "10": ("events", "DSN", "verp", [(Kind.DEFERRED, None, ROWS[110], 110)]),
    "11": ("ignored", "automatic reply", "none", []),
    "12": ("ignored", "automatic reply", "none", []),
    "13": ("unrecognised", "not a mail message", "none", []),
    "14": ("events", "ARF", "message-id", [(Kind.COMPLAINED, None, ROWS[113], 113)]),
    "15": ("ignored", "read receipt", "none", []),
    # a block list refusal (5.7.606) says nothing against the address: soft
    "16": ("events", "DSN", "verp", [(Kind.BOUNCED, Bounce.SOFT, ROWS[115], 115)]),
    "17": ("unrecognised", "no bounce", "none", []),
}
