"""A DNS server on 127.0.0.1 for the DMARC check's tests (dnslib), answering from a dict.

`records` maps a name to its records: `("TXT", "v=DMARC1; p=reject")`, `("CNAME", target)`.
A name not in it is NXDOMAIN; a name without records of the asked type answers with none.
"""

from __future__ import annotations

from dnslib import CNAME, QTYPE, RCODE, RR, TXT
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class Zone(BaseResolver):
    def __init__(self) -> None:
        self.records: dict[str, list[tuple[str, str]]] = {}
        self.asked: list[tuple[str, str]] = []

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        kind = QTYPE[request.q.qtype]
        self.asked.append((name, kind))
        found = self.records.get(name)
        if found is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for rtype, value in found:
            if rtype == kind or rtype == "CNAME":
                data = TXT(value) if rtype == "TXT" else CNAME(value)
                reply.add_answer(RR(request.q.qname, getattr(QTYPE, rtype), rdata=data, ttl=60))
        return reply


class LocalDns:
    """The running server: `address` is what NEWSLETTER_DNS_SERVER takes."""

    def __init__(self) -> None:
        self.zone = Zone()
        self.server = DNSServer(self.zone, address="127.0.0.1", port=0,
                                logger=DNSLogger(log="-request,-reply,-truncated,-error,-recv,"
                                                     "-send,-data", prefix=False))
        self.server.start_thread()
        self.address = f"127.0.0.1:{self.server.server.server_address[1]}"

    def stop(self) -> None:
        self.server.stop()

