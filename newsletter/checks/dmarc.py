"""`newsletter check`: can mail from the From domain pass its DMARC policy on this sending path?

A receiver applies the From domain's DMARC policy (RFC 7489) to every message: with `p=reject`
or `p=quarantine` a message passes only when SPF passes for an envelope domain aligned with
the From domain, or a DKIM signature of an aligned domain verifies. Aligned: the same domain
(`aspf=s` / `adkim=s`) or the same organisational domain (`r`, the default). The policy is
found at `_dmarc.<From domain>`, else at its parent domains (a subdomain then gets `sp=`); the
organisational domain is taken as the highest of them that publishes a record, else the last
two labels (no public suffix list: a simplification of DMARCbis's tree walk).

What a sending path can show (newsletter.yaml and the environment say which one is used):

- SendGrid signs with the domain you authenticated in SendGrid (domain authentication):
  aligned when `s1._domainkey` and `s2._domainkey` of the From domain (or, relaxed, of a parent
  down to the organisational domain) are published (SendGrid's CNAMEs, or keys);
- SMTP: the relay signs (DKIM) and sends with the envelope domain we give it, the return path
  of `bounces:` (VERP) or else the From address. Aligned through SPF when that envelope domain
  is aligned and publishes an SPF record (whether the record names the relay's outgoing
  addresses cannot be seen from here), or through DKIM when an aligned domain publishes a key
  under a selector relays commonly use (Microsoft 365 `selector1`/`selector2`, Google
  `google`, ...; assumed to be the relay's);
- the outbox sends nothing and is not judged.

The check fails (an error) only when the policy is quarantine or reject and the path shows
no way to align. No resolver answering (offline) or `NEWSLETTER_DNS_SERVER=off` skips it with
a note. `check --online` adds the DMARC, SPF and DKIM records found as notes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from newsletter.checks.model import ERROR, Context, Finding
from newsletter.core.errors import InputError, Problem

LIFETIME = 3.0  # seconds a look-up may take, retries included
SENDGRID_SELECTORS = ("s1", "s2")
RELAY_SELECTORS = ("selector1", "selector2", "google", "default", "dkim", "k1", "mail", "smtp",
                   "s1", "s2")


class Offline(Exception):
    """No DNS resolver answered."""


class Dns:
    """TXT and CNAME look-ups through one resolver (`server`: `host[:port]`, else the
    system's)."""

    def __init__(self, server: str | None = None, lifetime: float | None = None):
        import dns.resolver

        self.resolver = dns.resolver.Resolver(configure=server is None)
        if server is not None:
            host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "")
            if not port.isdigit() and port:
                raise InputError(Problem("NEWSLETTER_DNS_SERVER", None, f"{server!r} is not "
                                         "an address like 127.0.0.1:53 (or `off`)"))
            self.resolver.nameservers = [host]
            self.resolver.port = int(port) if port else 53
        self.resolver.lifetime = self.resolver.timeout = lifetime or LIFETIME
        self.cache: dict[tuple[str, str], list[str]] = {}

    def _ask(self, name: str, kind: str) -> list[str]:
        import dns.exception
        import dns.resolver

        key = (name.lower(), kind)
        if key in self.cache:
            return self.cache[key]
        try:
            answer = self.resolver.resolve(name, kind, raise_on_no_answer=False)
            found = [_text(r) for r in answer]
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            found = []
        except (dns.resolver.NoNameservers, dns.exception.Timeout, OSError) as exc:
            raise Offline(str(exc) or type(exc).__name__) from None
        self.cache[key] = found
        return found

    def txt(self, name: str) -> list[str]:
        return self._ask(name, "TXT")

    def cname(self, name: str) -> str | None:
        found = self._ask(name, "CNAME")
        return found[0].rstrip(".") if found else None


def _text(rdata: Any) -> str:
    strings = getattr(rdata, "strings", None)
    if strings is not None:  # a TXT record: its strings joined, as RFC 7208/7489 say
        return b"".join(strings).decode("utf-8", "replace")
    return rdata.to_text()


@dataclass(frozen=True)
class Dmarc:
    """A DMARC record and where it was found."""

    found_at: str  # the domain whose _dmarc name holds it
    tags: dict[str, str]

    def policy(self, domain: str) -> str:
        """The policy for mail from `domain` (a subdomain of `found_at` gets `sp=`)."""
        own = self.tags.get("p", "none")
        return own if domain == self.found_at else self.tags.get("sp", own)

    def mode(self, tag: str) -> str:
        return "s" if self.tags.get(tag, "r").startswith("s") else "r"


def parse_dmarc(record: str) -> dict[str, str] | None:
    """The tags of a DMARC record (lower case), or None when it is not one."""
    tags = {}
    for part in record.split(";"):
        name, _, value = part.partition("=")
        if name.strip():
            tags[name.strip().lower()] = value.strip().lower()
    return tags if tags.get("v") == "dmarc1" else None


def _ancestors(domain: str) -> list[str]:
    """`domain` and its parents down to two labels."""
    labels = domain.lower().rstrip(".").split(".")
    return [".".join(labels[i:]) for i in range(max(1, len(labels) - 1))]


def find_dmarc(dns: Dns, domain: str) -> Dmarc | None:
    """The DMARC record that governs `domain` (its own, else its nearest parent's)."""
    for candidate in _ancestors(domain):
        for record in dns.txt(f"_dmarc.{candidate}"):
            tags = parse_dmarc(record)
            if tags is not None:
                return Dmarc(candidate, tags)
    return None


def org_domain(dns: Dns, domain: str) -> str:
    """The organisational domain: the highest parent with a DMARC record, else two labels."""
    chain = _ancestors(domain)
    for candidate in reversed(chain):
        if any(parse_dmarc(r) is not None for r in dns.txt(f"_dmarc.{candidate}")):
            return candidate
    return chain[-1]


def aligned(dns: Dns, one: str, other: str, mode: str) -> bool:
    """DMARC identifier alignment of two domains, strict (`s`) or relaxed (`r`)."""
    one, other = one.lower(), other.lower()
    return one == other or (mode == "r" and org_domain(dns, one) == org_domain(dns, other))


def spf(dns: Dns, domain: str) -> str | None:
    return next((r for r in dns.txt(domain) if r.lower().startswith("v=spf1")), None)


def dkim_keys(dns: Dns, domains: list[str], selectors: tuple[str, ...]) -> list[str]:
    """`selector._domainkey.domain -> what` for each DKIM record published."""
    found = []
    for domain in domains:
        for selector in selectors:
            name = f"{selector}._domainkey.{domain}"
            target = dns.cname(name)
            if target:
                found.append(f"{name} -> {target}")
            elif any("p=" in r for r in dns.txt(name)):
                found.append(f"{name} (key)")
    return found


@dataclass
class Path:
    """What the sending path can show for alignment."""

    name: str
    ways: list[str]  # how it can align (empty: it cannot)
    missing: str  # what it lacks, for the error
    fix: str
    notes: list[str]


def _dkim_domains(dns: Dns, domain: str, dmarc: Dmarc) -> list[str]:
    """Domains whose DKIM signature would be aligned with mail from `domain`."""
    if dmarc.mode("adkim") == "s":
        return [domain]
    org = org_domain(dns, domain)
    return [d for d in _ancestors(domain) if d == org or d.endswith("." + org)]


def judge_path(dns: Dns, ctx: Context, domain: str, dmarc: Dmarc) -> Path | None:
    """The sending path's alignment (None for a path that sends nothing or is not known)."""
    settings, config = ctx.pub.settings, ctx.pub.config
    if settings.transport == "sendgrid":
        keys = dkim_keys(dns, _dkim_domains(dns, domain, dmarc), SENDGRID_SELECTORS)
        return Path("sendgrid", [f"DKIM through SendGrid domain authentication ({k})"
                                 for k in keys],
                    f"no SendGrid domain authentication (s1._domainkey.{domain} and "
                    f"s2._domainkey.{domain} are not published)",
                    f"authenticate {domain} in SendGrid (Settings > Sender Authentication) and "
                    "publish the CNAME records it gives", keys)
    if settings.transport != "smtp":
        return None
    relay = urlsplit(settings.smtp_url or "").hostname or "the relay"
    envelope = config.bounces.domain if config.bounces else domain
    record = spf(dns, envelope)
    ways, notes = [], [f"SPF {envelope} (envelope domain): {record or 'no SPF record'}"]
    if record and aligned(dns, envelope, domain, dmarc.mode("aspf")):
        ways.append(f"SPF of the envelope domain {envelope} (if it names {relay}'s "
                    "outgoing addresses)")
    keys = dkim_keys(dns, _dkim_domains(dns, domain, dmarc), RELAY_SELECTORS)
    ways += [f"DKIM ({k}), if {relay} signs with it" for k in keys]
    notes += keys or [f"DKIM {domain}: no key under the selectors relays commonly use"]
    aligned_envelope = aligned(dns, envelope, domain, dmarc.mode("aspf"))
    missing = (f"the envelope domain {envelope} has no SPF record" if aligned_envelope
               else f"the envelope domain {envelope} is not aligned with {domain}")
    return Path(f"smtp via {relay}", ways, missing + " and no aligned DKIM key is published",
                f"publish an SPF record for {envelope} naming {relay}'s outgoing servers, "
                f"or have {relay} sign with a DKIM key of {domain}", notes)


def check_dmarc(ctx: Context) -> list[Finding]:
    """An error when the From domain's DMARC policy would reject or quarantine our mail."""
    notes: list[str] = ctx.extra.setdefault("dns_notes", [])
    server = ctx.pub.settings.dns_server
    if server is not None and server.lower() == "off":
        notes.append("DMARC not checked: DNS checks are off (NEWSLETTER_DNS_SERVER=off)")
        return []
    dns = Dns(server)
    email = ctx.pub.config.sender.email
    domain = email.rsplit("@", 1)[1].lower()
    try:
        dmarc = find_dmarc(dns, domain)
        policy = dmarc.policy(domain) if dmarc else "none"
        enforced = policy in ("quarantine", "reject")
        path = judge_path(dns, ctx, domain, dmarc or Dmarc(domain, {})) \
            if enforced or ctx.online else None
    except Offline as exc:
        notes.append(f"DMARC not checked: no DNS resolver answered ({exc})")
        return []
    if ctx.online:
        shown = ", ".join(f"{k}={v}" for k, v in dmarc.tags.items() if k != "v") if dmarc \
            else ""
        notes.append(f"DMARC {domain}: " + (f"{shown} (at _dmarc.{dmarc.found_at})" if dmarc
                                              else "no DMARC record"))
        if path is not None:
            notes += path.notes
            notes.append(f"sending path {path.name}: " + ("; ".join(path.ways) if path.ways
                                                          else "cannot align"))
    if path is None or path.ways or not enforced:
        return []
    return [ctx.finding(ERROR, "dns.dmarc",
                        f"{domain} publishes DMARC p={policy}, and mail sent {path.name} cannot "
                        f"pass it: {path.missing}; receivers would "
                        f"{'refuse' if policy == 'reject' else 'quarantine'} it",
                        path.fix, needle=email, part="headers", excerpt_text=f"From: {email}")]
