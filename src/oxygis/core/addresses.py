"""Who the client is: the peer, or behind a trusted proxy, the address it reports."""

from __future__ import annotations

import ipaddress

from django.conf import settings


def is_trusted_proxy(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in settings.TRUSTED_PROXIES)


def real_client(peer: str, forwarded_for: str | None) -> str:
    """``peer``, unless it is one of OXYGIS_TRUSTED_PROXIES: then the right-most address
    of ``X-Forwarded-For`` that is not one of our proxies (what a client can forge is
    left of it)."""
    if forwarded_for and is_trusted_proxy(peer):
        for hop in reversed(forwarded_for.split(",")):
            hop = hop.strip()
            if hop and not is_trusted_proxy(hop):
                return hop
    return peer
