"""Personal data kept no more precisely than needed."""

from __future__ import annotations

import ipaddress


def _ipv4_network(text: str) -> str | None:
    """The /24 of a dotted-quad IPv4 address as `ipaddress` would accept it (four decimal
    octets of at most three ASCII digits, no leading zero, each <= 255); None otherwise.
    The webhook's fast path: `ipaddress` takes about 15 microseconds an address."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    for part in parts:
        if not (0 < len(part) <= 3 and part.isascii() and part.isdigit()) \
                or (part[0] == "0" and part != "0") or int(part) > 255:
            return None
    return f"{parts[0]}.{parts[1]}.{parts[2]}.0/24"


def truncate_ip(ip: str | None) -> str | None:
    """The address's network, for privacy: IPv4 to its /24, IPv6 to its /48."""
    if not ip:
        return None
    text = ip.strip()
    network = _ipv4_network(text)
    if network is not None:
        return network
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def throttle_key(ip: str | None) -> str:
    """Whom a per-client limit counts: an IPv4 address as it is, an IPv6 address by its /64
    (one subscriber line or server usually holds a whole /64, so counting single addresses
    would set no limit at all); an IPv4-mapped IPv6 address as its IPv4 address. Anything
    that is not an address is counted as the text it is."""
    text = (ip or "").strip()
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text[:100] or "unknown"
    if address.version == 6:
        mapped = address.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
