"""Shared fixtures: an HTTPS test client, real tenants and the personas.

Personas (as healthchecks' alice/bob/charlie and Zulip's second realm):
* ``alpha``: the main tenant, with its ``owner`` (the first administrator) and a ``member``;
* ``bravo``: a second tenant, whose own owner is an outsider to alpha.
"""

from __future__ import annotations

import itertools
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import get_resolver

from oxygis.platform.provisioning import drop_tenant, provision_tenant
from oxygis.tenancy.databases import tenant_context

MEMBER_PASSWORD = "Member-pass-2026!"
URLCONFS = ("oxygis.urls", "oxygis.urls_console")
EXERCISED_ROUTES: set[tuple[str, str]] = set()


class HttpsClient(Client):
    """A test client that speaks HTTPS to a given host and records the routes it hits."""

    def __init__(self, host: str, **kwargs):
        super().__init__(HTTP_HOST=host, **kwargs)

    def generic(self, *args, **kwargs):
        kwargs["secure"] = True
        return super().generic(*args, **kwargs)

    def request(self, **request):
        response = super().request(**request)
        match = getattr(response.wsgi_request, "resolver_match", None)  # None when unresolved
        if match is not None and response.status_code < 500:
            urlconf = getattr(response.wsgi_request, "urlconf", None) or "oxygis.urls"
            EXERCISED_ROUTES.add((urlconf, match.route))
        return response

    def sign_in(self, username: str, password: str):
        response = self.post("/accounts/login/", {"username": username, "password": password})
        assert response.status_code == 302, "sign-in failed"
        return response


def without_tokens(response) -> str:
    """The page with its per-response CSRF tokens masked out, for comparing pages."""
    import re

    return re.sub(r"[A-Za-z0-9]{64}", "TOKEN", response.content.decode())


def all_routes() -> set[tuple[str, str]]:
    routes = set()

    def walk(patterns, prefix, urlconf):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                walk(pattern.url_patterns, prefix + str(pattern.pattern), urlconf)
            else:
                routes.add((urlconf, prefix + str(pattern.pattern)))

    for urlconf in URLCONFS:
        walk(get_resolver(urlconf).url_patterns, "", urlconf)
    return routes


@dataclass
class TenantPersonas:
    tenant: object
    host: str
    owner_username: str
    owner_password: str
    member_username: str = "member"
    member_password: str = MEMBER_PASSWORD

    def client(self, **kwargs) -> HttpsClient:
        return HttpsClient(self.host, **kwargs)


_counter = itertools.count()


def reset_limits() -> None:
    """Empty the shared limiter: every test client comes from 127.0.0.1 by default, so
    one test's failed guesses would otherwise be the next test's 429."""
    import asyncio
    import threading

    from django.db import connections

    from oxygis.core.models import RateBucket

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        RateBucket.objects.all().delete()
        return

    def in_a_thread():  # Playwright's loop runs here: Django refuses this thread
        try:
            RateBucket.objects.all().delete()
        finally:
            connections.close_all()

    worker = threading.Thread(target=in_a_thread)
    worker.start()
    worker.join()


@pytest.fixture(autouse=True)
def fresh_limits():
    reset_limits()


def unique_slug(stem: str = "t") -> str:
    return f"{stem}{next(_counter)}-{secrets.token_hex(3)}"


def _make(slug: str, name: str) -> TenantPersonas:
    made = provision_tenant(slug, name=name, plan="paid")
    with tenant_context(made.tenant):
        member = get_user_model()(username="member", email=f"member@{slug}.example")
        member.set_password(MEMBER_PASSWORD)
        member.save()
    return TenantPersonas(
        made.tenant, f"{slug}.localhost", made.admin_username, made.admin_password
    )


@pytest.fixture(scope="session")
def alpha():
    personas = _make(unique_slug("alpha"), "Alpha <Corp> & Co")
    yield personas
    drop_tenant(personas.tenant)


@pytest.fixture(scope="session")
def bravo():
    personas = _make(unique_slug("bravo"), "Bravo Ltd")
    yield personas
    drop_tenant(personas.tenant)


@pytest.fixture
def tenant_factory():
    """Provision throwaway tenants; whatever is left is dropped after the test."""
    made = []

    def make(slug: str | None = None, name: str = "Throwaway", plan: str = "trial"):
        result = provision_tenant(slug or unique_slug(), name=name, plan=plan)
        made.append(result.tenant)
        return result

    yield make
    from oxygis.tenancy.models import Tenant

    for tenant in made:
        if Tenant.objects.filter(pk=tenant.pk).exists():
            drop_tenant(tenant)


def totp(secret_b32: str, step_offset: int = 0, at: float | None = None) -> str:
    """RFC 6238 TOTP (SHA-1, 30 s, 6 digits), computed independently of django-otp."""
    import base64
    import hashlib
    import hmac
    import struct
    import time

    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    counter = int((at or time.time()) // 30) + step_offset
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def mails_to(address: str, folder=None) -> list:
    """Messages written under var/mail/ for ``address``, oldest first."""
    from email import policy
    from email.parser import BytesParser
    from pathlib import Path

    from django.conf import settings

    folder = Path(folder or settings.EMAIL_FILE_PATH)
    found = []
    for path in sorted(folder.glob("*.eml")) if folder.exists() else []:
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        if address.lower() in str(message["To"]).lower():
            found.append(message)
    return found


def link_in(message, contains: str) -> str:
    import re

    text = message.get_body(preferencelist=("plain",)).get_content()
    return next(u for u in re.findall(r"https://\S+", text) if contains in u)


def secret_on(page_html: str) -> str:
    import re

    return re.search(r'id="totp-secret">([A-Z2-7]+)<', page_html)[1]


@dataclass
class SalesWorld:
    """Alpha's sales data: two salespeople, a manager, a read-only user, a user with no
    role, contacts, products, and orders of each salesperson."""

    tenant: object
    users: dict
    contacts: list
    products: list
    orders: dict  # username -> list of order pks

    def user(self, name):
        return self.users[name]


@pytest.fixture(scope="session")
def world(alpha):
    from decimal import Decimal

    from django.contrib.auth.models import Group

    from oxygis.access.actors import system
    from oxygis.sales import services
    from oxygis.sales.models import Contact, Product

    roles = {
        "sam": "Salesperson",
        "sue": "Salesperson",
        "maria": "Sales manager",
        "rita": "Read-only",
        "nora": None,
    }
    with tenant_context(alpha.tenant), system(reason="test fixture: sales world"):
        User = get_user_model()
        users = {}
        for name, role in roles.items():
            user = User.objects.create(username=name, email=f"{name}@alpha.example")
            user.set_password(MEMBER_PASSWORD)
            user.save()
            if role:
                user.groups.add(Group.objects.get(name=role))
            users[name] = user
        users["admin"] = User.objects.get(username="admin")
        contacts = [
            Contact.objects.create(name=f"Customer {i} <b>&</b>", email=f"c{i}@x.example")
            for i in range(3)
        ]
        products = [
            Product.objects.create(
                name=f"Widget {i}", sku=f"W-{i}", unit_price=Decimal("9.99") * (i + 1)
            )
            for i in range(3)
        ]
        orders = {}
        for name in ("sam", "sue", "maria"):
            orders[name] = [
                services.create_order(
                    customer=contacts[i % 3],
                    salesperson=users[name],
                    lines=[
                        services.LineInput(
                            "Line", Decimal(2), Decimal("10.00"), Decimal("21"), products[i % 3]
                        )
                    ],
                ).pk
                for i in range(2)
            ]
    return SalesWorld(alpha.tenant, users, contacts, products, orders)


@pytest.fixture
def own_catalog(tmp_path):
    """Settings for processes with a catalog of their own (and, on PostgreSQL, their own
    names): their worker must not see, nor back up, the run's tenants."""
    import secrets as _secrets

    from tests.conftest import ENGINE, PG_ADMIN_URL, PREFIX, _pg_admin

    env = {"OXYGIS_VAR_DIR": str(tmp_path)}
    if ENGINE == "postgresql":
        name = f"{PREFIX}own{_secrets.token_hex(3)}"
        with _pg_admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}_catalog"')
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        env |= {"OXYGIS_DATABASE_URL": f"{base}/{name}_catalog", "OXYGIS_DB_PREFIX": f"{name}_"}
    else:
        env |= {"OXYGIS_DATABASE_URL": ""}
    return env


def _alter_database(admin, name: str, clause: str) -> None:
    """``ALTER DATABASE name WITH clause``, tried again when PostgreSQL reports that
    another session changed the same pg_database row at that moment (a GRANT or REVOKE
    on it, as ``default_server()`` makes on the catalog): that is a race, not a fault."""
    import psycopg
    from psycopg import sql

    statement = sql.SQL("ALTER DATABASE {} WITH " + clause).format(sql.Identifier(name))
    for attempt in range(10):
        try:
            admin.execute(statement)
            return
        except psycopg.errors.InternalError as error:
            if "tuple concurrently updated" not in str(error) or attempt == 9:
                raise
            time.sleep(0.1)


def cut_database(engine: str, name: str):
    """Make a database unreachable, as an outage has it; return what brings it back.

    PostgreSQL: ``name`` refuses new connections and its sessions are ended. SQLite:
    the file at ``name`` is moved away and a folder, which SQLite cannot open, put in
    its place."""
    if engine.endswith("postgresql"):
        import psycopg

        from tests.conftest import PG_ADMIN_URL

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            _alter_database(admin, name, "ALLOW_CONNECTIONS false")
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                [name],
            )

        def back():
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                _alter_database(admin, name, "ALLOW_CONNECTIONS true")

        return back
    path = Path(name)
    away = path.with_name(path.name + ".away")
    os.rename(path, away)
    path.mkdir()

    def back():
        path.rmdir()
        os.rename(away, path)

    return back


@pytest.fixture(scope="session")
def directory_server(tmp_path_factory):
    """A real slapd on loopback (tests/directory_server.py), once per run."""
    from tests.directory_server import DirectoryServer, slapd_binary

    if slapd_binary() is None:
        message = "slapd not found (scripts/ensure-slapd installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    server = DirectoryServer(tmp_path_factory.mktemp("slapd"))
    yield server
    server.stop()


def connect_directory(tenant, server, *, enabled: bool = True, **fields) -> None:
    """Point ``tenant`` at the test directory: Sales -> Salesperson, Admins ->
    Administrator; ``employeeType: disabled`` marks a disabled account."""
    from oxygis.accounts.directory import set_bind_password
    from oxygis.accounts.models import DirectoryConfig
    from tests import directory_server as d

    values = {
        "url": server.url,
        "ca_certificate": server.ca_pem,
        "bind_dn": d.SERVICE_DN,
        "user_base": f"ou=people,{d.BASE}",
        "active_filter": "(!(employeeType=disabled))",
        "group_base": f"ou=groups,{d.BASE}",
        "role_mapping": f"{d.SALES_GROUP} = Salesperson\n{d.ADMINS_GROUP} = Administrator",
        "enabled": enabled,
        **fields,
    }
    with tenant_context(tenant):
        config = DirectoryConfig(pk=1, **values)
        set_bind_password(config, d.SERVICE_PASSWORD)
        config.save()


@pytest.fixture
def directory_tenant(directory_server):
    """A fresh tenant (owner and member with local passwords) whose directory is on."""
    personas = _make(unique_slug("ldap"), "Directory Co")
    connect_directory(personas.tenant, directory_server)
    yield personas
    drop_tenant(personas.tenant)


@dataclass
class OpenIDWorld:
    server: object  # tests.oidc_server.OpenIDServer
    first: TenantPersonas  # client "client-first"
    second: TenantPersonas  # client "client-second", same provider


OPENID_SECRETS = {"client-first": "first-client-secret-2026", "client-second": "second-client-2026"}


@pytest.fixture(scope="module")
def openid_world(tmp_path_factory):
    """A real OpenID provider on loopback (tests/oidc_server.py) with a client for each
    of two fresh tenants, whose sign-in through it is on."""
    from oxygis.tenancy.hosts import site_url
    from tests.oidc_server import OpenIDServer, provider_available

    if not provider_available():
        message = "node or oidc-provider missing (scripts/ensure-oidc-provider installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    first = _make(unique_slug("oidc"), "OpenID First")
    second = _make(unique_slug("oidc"), "OpenID Second")
    clients = [
        {
            "client_id": client_id,
            "client_secret": OPENID_SECRETS[client_id],
            "redirect_uris": [site_url(p.tenant.slug, "/accounts/oidc/callback/")],
            "post_logout_redirect_uris": [site_url(p.tenant.slug, "/accounts/login/")],
        }
        for client_id, p in (("client-first", first), ("client-second", second))
    ]
    server = OpenIDServer(tmp_path_factory.mktemp("oidc"), clients)
    world = OpenIDWorld(server, first, second)
    connect_openid(first, server, "client-first")
    connect_openid(second, server, "client-second")
    yield world
    server.stop()
    drop_tenant(first.tenant)
    drop_tenant(second.tenant)


def connect_openid(personas, server, client_id: str, **fields) -> None:
    """(Re)set ``personas``' identity provider: groups sales -> Salesperson, admins ->
    Administrator; our 2FA applies; on."""
    from oxygis.accounts.models import OpenIDConfig
    from oxygis.accounts.oidc import set_client_secret

    values = {
        "issuer": server.issuer,
        "client_id": client_id,
        "label": "Test IdP",
        "scopes": "openid email profile groups",
        "role_mapping": "sales = Salesperson\nadmins = Administrator",
        "enabled": True,
        **fields,
    }
    with tenant_context(personas.tenant):
        OpenIDConfig.objects.filter(pk=1).delete()
        config = OpenIDConfig(pk=1, **values)
        set_client_secret(config, OPENID_SECRETS.get(client_id, "some-secret"))
        config.save()


def verified_by(client, tenant, device) -> None:
    """Mark ``client``'s session as having passed 2FA with ``device`` (django-otp's own
    session key), for server-side tests of what comes after; the ceremonies themselves
    are exercised in the browser tests."""
    from django.conf import settings
    from django.contrib.sessions.backends.db import SessionStore
    from django_otp import DEVICE_ID_SESSION_KEY

    with tenant_context(tenant):
        session = SessionStore(client.cookies[settings.SESSION_COOKIE_NAME].value)
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
