"""Who may read ``/metrics``: the peer's address against ``METRICS_ALLOWED_IPS`` (pure)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

# Loopback and the private ranges: a Prometheus on the same host or network.
DEFAULT_METRICS_ALLOWED_IPS = ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")


def parse_networks(items: Iterable[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Networks from addresses or CIDR ranges; ``ValueError`` names the first bad one."""
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or range such as 10.0.0.0/8") from None
    return tuple(networks)


def address_allowed(address: str | None, allowed: Iterable[str]) -> bool:
    """Whether ``address`` (the peer's, as the server reports it) is in one of ``allowed``'s ranges."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in parse_networks(allowed) if network.version == ip.version)
