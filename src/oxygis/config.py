"""Strict parsing of the ``OXYGIS_*`` environment.

Every setting the operator can change is read here, once, with its type checked.
A value that does not parse is an error naming the variable, never a silent default.
Secrets may be given as ``OXYGIS_<NAME>_FILE`` (a path whose content is the secret), so
that they need not sit in the environment or on a command line.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

ENVIRONMENTS = ("development", "production", "test")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    return os.environ.get(f"OXYGIS_{name}")


def env_str(name: str, default: str | None = None) -> str | None:
    value = _raw(name)
    return default if value is None else value.strip()


def env_secret(name: str) -> str | None:
    """A secret from ``OXYGIS_<name>`` or the file named by ``OXYGIS_<name>_FILE``."""
    direct, path = _raw(name), _raw(f"{name}_FILE")
    if direct and path:
        raise ImproperlyConfigured(f"set OXYGIS_{name} or OXYGIS_{name}_FILE, not both")
    if path:
        try:
            return Path(path).read_text().strip() or None
        except OSError as exc:
            raise ImproperlyConfigured(
                f"OXYGIS_{name}_FILE: cannot read {path}: {exc.strerror}"
            ) from None
    return direct or None


def env_list(name: str) -> list[str]:
    """A list separated by commas or white space."""
    return (env_str(name) or "").replace(",", " ").split()


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ImproperlyConfigured(f"OXYGIS_{name} must be true or false, not {value!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"OXYGIS_{name} must be a whole number, not {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"OXYGIS_{name} must be at least {minimum}, not {number}")
    return number


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    value = (env_str(name) or default).lower()
    if value not in choices:
        raise ImproperlyConfigured(f"OXYGIS_{name} must be one of {', '.join(choices)}")
    return value


_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
DOMAIN_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")


def env_domain(name: str, default: str) -> str:
    value = (env_str(name) or default).lower().rstrip(".")
    if not DOMAIN_RE.match(value):
        raise ImproperlyConfigured(f"OXYGIS_{name} is not a valid domain name: {value!r}")
    return value


def parse_pooler_address(value: str, what: str) -> tuple[str, int]:
    """Where a connection pooler listens: ``host:port`` (``[v6]:port`` for an IPv6
    address), or ``/socket/folder:port`` for one on this host (libpq's convention: a host
    that is an absolute path names the folder holding the Unix socket
    ``.s.PGSQL.<port>``); ImproperlyConfigured naming ``what`` otherwise."""
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if (
        not sep
        or not host
        or not port.isdigit()
        or not 1 <= int(port) <= 65535
        or any(ch.isspace() or not ch.isprintable() for ch in host)
    ):
        raise ImproperlyConfigured(f"{what} must be host:port, not {value!r}")
    if "/" in host and not host.startswith("/"):
        # libpq would take a relative path for a host name: say so now, not at the
        # first request.
        raise ImproperlyConfigured(f"{what}: a socket folder must be an absolute path")
    return host, int(port)


def env_pooler_address(name: str) -> tuple[str, int] | None:
    """A pooler's address (parse_pooler_address), or None when unset."""
    value = env_str(name)
    return parse_pooler_address(value, f"OXYGIS_{name}") if value else None


def env_networks(name: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    value = env_str(name) or ""
    networks = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"OXYGIS_{name}: {item!r} is not an IP address or network"
            ) from None
    return tuple(networks)
