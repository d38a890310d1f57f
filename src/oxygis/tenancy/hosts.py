"""Host header -> which site answers: a tenant, the platform console, or nobody.

Pure string work: nothing here touches a database, so a malformed or foreign host is
turned away before any connection is opened.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.http.request import split_domain_port

from .tenants import RESERVED_SLUGS, SLUG_RE

TENANT, CONSOLE = "tenant", "console"


@dataclass(frozen=True)
class Site:
    kind: str  # TENANT or CONSOLE
    slug: str = ""


def classify_host(raw_host: str) -> Site | None:
    """Map a Host header value to a Site, or None for any host we do not serve.

    Case is folded and one trailing dot dropped (both name the same DNS host); a port is
    ignored; anything else unusual (IP literals, nested subdomains, other domains,
    reserved names) is refused.
    """
    if not raw_host or len(raw_host) > 300:
        return None
    domain, _port = split_domain_port(raw_host)  # lower-cases; "" when malformed
    suffix = f".{settings.DOMAIN}"
    if not domain.endswith(suffix):
        return None
    label = domain[: -len(suffix)]
    if label == settings.CONSOLE_SUBDOMAIN:
        return Site(CONSOLE)
    if SLUG_RE.match(label) and "--" not in label and label not in RESERVED_SLUGS:
        return Site(TENANT, label)
    return None


def tenant_host(slug: str) -> str:
    return f"{slug}.{settings.DOMAIN}"


def site_url(slug: str | None, path: str = "/") -> str:
    """The canonical address of a tenant's site (or, with None, the console's), for links
    that leave the request: e-mails, CLI output. Built from the settings, never from the
    request's Host header (which a client chooses: link poisoning)."""
    host = tenant_host(slug) if slug else f"{settings.CONSOLE_SUBDOMAIN}.{settings.DOMAIN}"
    port = "" if settings.PUBLIC_PORT == 443 else f":{settings.PUBLIC_PORT}"
    return f"https://{host}{port}{path}"


SERVED_PORT_FILE = "served-port"


def adopt_served_port() -> None:
    """For a command run from another shell than `oxygis serve` (a restore printing the
    restored workspace's address, a new tenant's): without OXYGIS_PUBLIC_PORT, links
    name the port the service runs on, which a running `serve` notes in the data folder
    with its process id (a note left by a server that is gone is ignored)."""
    from oxygis import config

    if config.env_str("PUBLIC_PORT") is not None:
        return
    try:
        port, pid = (Path(settings.VAR_DIR) / SERVED_PORT_FILE).read_text().split()
        port_number, pid_number = int(port), int(pid)
    except (OSError, ValueError):
        return
    if not 0 < port_number < 65536 or not _running(pid_number):
        return
    settings.PUBLIC_PORT = port_number


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's
    return pid > 0


def note_served_port(port: int) -> None:
    (Path(settings.VAR_DIR) / SERVED_PORT_FILE).write_text(f"{port} {os.getpid()}\n")


def forget_served_port() -> None:
    note = Path(settings.VAR_DIR) / SERVED_PORT_FILE
    try:
        if note.read_text().split()[1:] == [str(os.getpid())]:
            note.unlink()
    except (OSError, IndexError):
        pass
