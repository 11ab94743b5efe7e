"""Personal data kept no more precisely than needed."""

from __future__ import annotations

import ipaddress


def truncate_ip(ip: str | None) -> str | None:
    """The address's network, for privacy: IPv4 to its /24, IPv6 to its /48."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
