"""Parse ``OXYGIS_DATABASE_URL`` (``postgresql://user:password@host:port/dbname``).

Several hosts (``@db1:5432,db2:5432/``) name the members of a high-availability cluster
(Patroni, docs/deployment.md): libpq tries them in turn and keeps the one accepting
writes (``target_session_attrs=read-write``, the default with several hosts), so that a
failover needs no change of settings. Kept free of Django model imports: settings.py
uses it.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_ALLOWED_OPTIONS = {
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "connect_timeout",
    "target_session_attrs",
}
_SESSION_ATTRS = {"any", "read-write", "read-only", "primary", "standby", "prefer-standby"}
# Django's PostgreSQL backend with connections from the process's budget (tenancy/pool.py).
POOLED_ENGINE = "oxygis.tenancy.postgresql"
POSTGRESQL_ENGINES = ("django.db.backends.postgresql", POOLED_ENGINE)


def is_postgresql(entry: dict) -> bool:
    return entry["ENGINE"] in POSTGRESQL_ENGINES


def parse_database_url(url: str) -> dict:
    """Return a Django ``DATABASES`` entry; errors never echo the URL (it holds a password)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ImproperlyConfigured(
            "OXYGIS_DATABASE_URL must start with postgresql:// (SQLite needs no URL)"
        )
    name = unquote(parts.path.lstrip("/"))
    if not name or "/" in name:
        raise ImproperlyConfigured("OXYGIS_DATABASE_URL must name a database: .../dbname")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    hosts, ports = split_hosts(hostlist)
    options = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _ALLOWED_OPTIONS:
            raise ImproperlyConfigured(f"OXYGIS_DATABASE_URL: unknown option {key!r}")
        options[key] = value
    if options.get("target_session_attrs", "any") not in _SESSION_ATTRS:
        raise ImproperlyConfigured(
            "OXYGIS_DATABASE_URL: target_session_attrs must be one of "
            + ", ".join(sorted(_SESSION_ATTRS))
        )
    if "," in hosts:
        # A cluster: only its primary takes writes.
        options.setdefault("target_session_attrs", "read-write")
    return {
        "ENGINE": POOLED_ENGINE,
        "OXYGIS_BUDGET": "catalog",
        "NAME": name,
        "USER": unquote(user),
        "PASSWORD": unquote(password),
        "HOST": hosts,
        "PORT": ports,
        "OPTIONS": options,
        "CONN_MAX_AGE": 0,
    }


def split_hosts(hostlist: str) -> tuple[str, str]:
    """``db1:5432,[::1]:5433`` -> (``db1,::1``, ``5432,5433``): libpq's host and port
    lists. One host: its port, or "" for the default. Several: a port for each (5432
    where none is given), as libpq wants lists of the same length."""
    hosts, ports = [], []
    for item in hostlist.split(",") if hostlist else []:
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":")
            if rest and not rest.startswith(":"):
                raise ImproperlyConfigured("OXYGIS_DATABASE_URL has an invalid host")
        else:
            host, _, port = item.partition(":")
        if not host or (port and not (port.isdigit() and 1 <= int(port) <= 65535)):
            raise ImproperlyConfigured("OXYGIS_DATABASE_URL has an invalid host or port")
        hosts.append(unquote(host))
        ports.append(port)
    if len(hosts) > 1:
        ports = [port or "5432" for port in ports]
    return ",".join(hosts), ",".join(ports)


def host_ports(host: str, port: str) -> list[tuple[str, str]]:
    """The (host, port) pairs of libpq's lists (one port for all, or one each)."""
    hosts = host.split(",") if host else [""]
    ports = port.split(",") if port else [""]
    if len(ports) == 1:
        ports = ports * len(hosts)
    return list(zip(hosts, ports, strict=True))
