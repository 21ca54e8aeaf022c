"""Who may read /metrics: a request with the bearer token ABPLATFORM_METRICS_TOKEN, or one whose peer
address is in ABPLATFORM_METRICS_ALLOW (default: loopback only).

The address is the connection's (REMOTE_ADDR), never X-Forwarded-For, which any client can write: scrape
the web processes directly, not through the proxy, or use the token.
"""

from __future__ import annotations

import hmac
import ipaddress
from functools import lru_cache

from django.conf import settings

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(allowed: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(network, strict=False) for network in allowed)


def address_allowed(address: str, allowed: tuple[str, ...]) -> bool:
    """Whether `address` is in one of the `allowed` networks (an IPv4-mapped IPv6 address counts as IPv4)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == network.version and ip in network for network in _networks(allowed))


def token_matches(authorization: str, token: str) -> bool:
    """Whether an Authorization header is "Bearer <token>" (compared in constant time); False without a token."""
    scheme, _, presented = authorization.partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())


def may_scrape(remote_addr: str, authorization: str) -> bool:
    return token_matches(authorization, settings.METRICS_TOKEN) or address_allowed(
        remote_addr, tuple(settings.METRICS_ALLOW)
    )
