"""The service stays up under abuse and outages (issue 12): slow and idle clients tie up
no worker, every secret check pays the shared limiter before any hashing, the password
hashers are capped per process, and an unreachable database is a clean 503.

Behaviour, not timings (bench/abuse.py measures those): sockets get generous timeouts
only so that a broken server fails the test instead of hanging it."""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django_otp.plugins.otp_totp.models import TOTPDevice

from oxygis.accounts.hashers import hashing_slot
from oxygis.core import limiter
from oxygis.tenancy.databases import tenant_context
from oxygis.tenancy.engines import engine_for
from tests.accounts.test_signin import make_user
from tests.conftest import ENGINE
from tests.fixtures import cut_database
from tests.served import Served, free_port, sign_in_over_https
from tests.tenancy.test_cli import oxygis

PASSWORD = "Abuse-pass-2026!"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One server process: the harshest case for slow clients."""
    server = Served(tmp_path_factory.mktemp("abuse"), free_port(), workers=1)
    yield server
    if server.process.poll() is None:
        server.stop()
    if os.environ.get("OXYGIS_DATABASE_URL"):
        oxygis("tenant", "drop", "demo", "--yes")


def tls(served, host="demo.localhost") -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", served.port), timeout=20)
    return served.tls_context().wrap_socket(raw, server_hostname=host)


def test_idle_and_slow_clients_do_not_starve_the_server(served):
    """Abuse: with 60 idle connections, 20 clients stuck in their headers and 10 in
    their body, on a server with one process, every other request is still answered."""
    stuck = [socket.create_connection(("127.0.0.1", served.port), timeout=20) for _ in range(60)]
    for _ in range(20):
        sock = tls(served)
        sock.sendall(b"POST /accounts/login/ HTTP/1.1\r\nHost: demo.localhost\r\nX-Slow: ")
        stuck.append(sock)
    for _ in range(10):
        sock = tls(served)
        sock.sendall(
            b"POST /accounts/login/ HTTP/1.1\r\nHost: demo.localhost\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n"
            b"username=a"
        )
        stuck.append(sock)
    try:
        for _ in range(10):
            assert served.request("demo.localhost", "GET", "/accounts/login/").status == 200
    finally:
        for sock in stuck:
            sock.close()


def test_a_connection_that_says_nothing_is_closed(served):
    """Abuse: a client that opens a connection, or starts its headers, and then stops,
    is disconnected by the server (it does not hold anything for long)."""
    for start in (b"", b"GET / HTTP/1.1\r\nHost: demo.localhost\r\n"):
        sock = tls(served)
        sock.sendall(start)
        assert sock.recv(1) == b""  # closed by the server (before the 20 s of the socket)
        sock.close()
    raw = socket.create_connection(("127.0.0.1", served.port), timeout=20)
    assert raw.recv(1) == b""  # not even a TLS handshake: closed too
    raw.close()


def test_connections_are_kept_alive(served):
    """HTTP/1.1 keep-alive: several requests over one TLS connection."""
    import http.client

    sock = tls(served)
    conn = http.client.HTTPConnection("demo.localhost", served.port)
    conn.sock = sock
    for _ in range(3):
        conn.request("GET", "/accounts/login/", headers={"Host": "demo.localhost"})
        response = conn.getresponse()
        response.read()
        assert response.status == 200 and not response.will_close
    assert conn.sock is sock
    sock.close()


def test_busy_password_hashers_answer_503_not_a_queue(alpha):
    """Abuse (CPU lever): when this process already hashes as many passwords as it may,
    another sign-in gets 503 with Retry-After at once rather than queueing; once a slot
    is free, sign-in works."""
    from django.test import override_settings

    client = alpha.client(raise_request_exception=False)
    with override_settings(PASSWORD_HASH_WAIT=0), hashing_slot():
        busy = client.post("/accounts/login/", {"username": "member", "password": "x"})
    assert busy.status_code == 503 and busy["Retry-After"] == "2"
    assert "checking passwords" in busy.content.decode()
    client.sign_in("member", alpha.member_password)


def _totp_user(tenant):
    user = make_user(tenant, "tess", PASSWORD)
    with tenant_context(tenant):
        TOTPDevice.objects.create(user=user, name="app", confirmed=True)
    return user


def _attempts():
    """One failed check of each kind of secret, from a given client: name -> call."""

    def sign_in(client):
        # A new name each time: the per-account lockout is not what is tested here.
        name = f"nobody-{os.urandom(4).hex()}"
        return client.post("/accounts/login/", {"username": name, "password": "Xx-1234567!"})

    def second_factor(client):
        return client.post("/accounts/2fa/verify/", {"code": "000000"})

    def reset_request(client):
        return client.post("/accounts/password/reset/", {"email": "nobody@x.example"})

    def reset_link(client):
        return client.get("/accounts/reset/MQ/abc-0123456789abcdef0123/")

    def invitation_link(client):
        return client.get("/accounts/invitation/MQ/abc-0123456789abcdef0123/")

    def api_key(client):
        return client.get("/api/v1/orders", headers={"Authorization": "Bearer oxy_no_such"})

    def customer_link(client):
        return client.get("/portal/order/?t=made-up")

    def openid_callback(client):
        return client.get("/accounts/oidc/callback/?code=guessed&state=guessed")

    def passkey(client):
        return client.post(
            "/accounts/webauthn/authentication/complete/", "{}", content_type="application/json"
        )

    return {
        "sign-in": sign_in,
        "2FA code": second_factor,
        "reset request": reset_request,
        "reset link": reset_link,
        "invitation link": invitation_link,
        "API key": api_key,
        "customer link": customer_link,
        "passkey": passkey,
        "OpenID callback": openid_callback,
    }


@pytest.mark.parametrize(
    "kind",
    [
        "sign-in",
        "2FA code",
        "reset request",
        "reset link",
        "invitation link",
        "API key",
        "customer link",
        "passkey",
        "OpenID callback",
    ],
)
def test_every_secret_check_pays_the_shared_limiter(alpha, kind):
    """S12/abuse: one address checking any kind of secret is refused (429 with
    Retry-After) once it has used the limiter's burst, whatever it guesses at."""
    client = alpha.client(REMOTE_ADDR=f"203.0.113.{150 + len(kind)}")
    if kind == "2FA code":
        _totp_user(alpha.tenant)
        client.sign_in("tess", PASSWORD)  # password right: only the code is asked
    attempt = _attempts()[kind]
    burst = int(limiter.SECRET_CHECKS.burst)
    statuses = [attempt(client).status_code for _ in range(burst + 1)]
    assert 429 not in statuses[:burst], statuses
    assert statuses[burst] == 429, statuses
    refused = attempt(client)
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0


def test_an_unreachable_tenant_database_is_a_clean_503(tenant_factory, caplog):
    """Outage: while a tenant's database cannot be reached, its pages answer the 503 page
    and its API JSON, with Retry-After, and the log has one line for the episode, not a
    traceback per request; once it is back, it answers again, without a restart."""
    made = tenant_factory()
    tenant = made.tenant
    with tenant_context(tenant):
        user = get_user_model().objects.get(username="admin")
        from oxygis.accounts.apikeys import issue_key

        _, token = issue_key(user, name="outage", scope="read", days=1)
    from tests.fixtures import HttpsClient

    host = f"{tenant.slug}.localhost"
    page = HttpsClient(host, raise_request_exception=False)
    page.sign_in("admin", made.admin_password)  # its pages now read the tenant's database
    api = HttpsClient(host, raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {token}")
    connections.close_all()
    entry = engine_for(tenant.database_server).tenant_entry(tenant)
    back = cut_database(entry["ENGINE"], entry["NAME"])
    try:
        with caplog.at_level(logging.INFO):
            answers = [page.get("/") for _ in range(5)]
            answers += [api.get("/api/v1/orders") for _ in range(5)]
    finally:
        back()
    for response in answers[:5]:
        assert response.status_code == 503 and response["Retry-After"]
        assert "cannot reach its database" in response.content.decode()
    for response in answers[5:]:
        assert response.status_code == 503 and "detail" in json.loads(response.content)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "database unavailable" in errors[0].getMessage(), [
        r.getMessage() for r in errors
    ]
    with caplog.at_level(logging.INFO):
        assert page.get("/").status_code == 200
    assert any("available again" in r.getMessage() for r in caplog.records)


def test_an_unreachable_catalog_is_a_clean_503_for_the_served_site(tmp_path, own_catalog):
    """Outage: the catalog itself out of reach, on the real server: 503 with
    Retry-After (JSON on the API), one log line per server process, back by itself."""
    server = Served(tmp_path, free_port(), workers=1, env=own_catalog)
    try:
        assert server.request("demo.localhost", "GET", "/accounts/login/").status == 200
        if ENGINE == "postgresql":
            entry = {
                "ENGINE": "postgresql",
                "NAME": own_catalog["OXYGIS_DATABASE_URL"].rsplit("/", 1)[1],
            }
        else:
            entry = {"ENGINE": "sqlite3", "NAME": str(tmp_path / "catalog.sqlite3")}
        back = cut_database(entry["ENGINE"], entry["NAME"])
        try:
            pages = [server.request("demo.localhost", "GET", "/accounts/login/") for _ in range(5)]
            api = server.request("demo.localhost", "GET", "/api/v1/orders")
        finally:
            back()
        assert {p.status for p in pages} == {503} and all(p.getheader("Retry-After") for p in pages)
        assert api.status == 503 and "detail" in json.loads(api.text)
        time.sleep(0.5)
        assert server.request("demo.localhost", "GET", "/accounts/login/").status == 200
        log = server.output()
        assert log.count("database unavailable") == 1, log[-3000:]
        assert "Traceback" not in log
    finally:
        server.stop()


def test_an_address_refused_by_the_limiter_is_refused_at_the_door(served):
    """Abuse: once the limiter has answered an address 429 on a path, that address's
    next requests there are refused by the server's front (plain text, still with the
    security headers and Retry-After), without running the application; another
    address is served as usual."""
    flooder, other = "127.0.0.66", "127.0.0.67"
    statuses = [
        sign_in_over_https(served, "demo.localhost", f"x{i}", "Wrong-pass-1!", flooder).status
        for i in range(int(limiter.SECRET_CHECKS.burst) + 1)
    ]
    assert statuses[-1] == 429
    door = served.request("demo.localhost", "GET", "/accounts/login/", source=flooder)
    assert door.status == 429 and door.getheader("Content-Type").startswith("text/plain")
    assert int(door.getheader("Retry-After")) > 0
    assert door.getheader("X-Frame-Options") == "DENY"
    assert "frame-ancestors 'none'" in door.getheader("Content-Security-Policy")
    assert served.request("demo.localhost", "GET", "/accounts/login/", source=other).status == 200


def test_the_fair_share_of_an_address_waits_then_refuses():
    """Abuse: an address gets REQUESTS_AT_ONCE requests running; the next ones wait (in
    the event loop) and run as places free up, in order; past the queue, refused."""
    import asyncio

    from oxygis.web.asgi import FairShare

    async def scenario():
        share = FairShare(at_once=2, queue=2)
        assert await share.enter("a") and await share.enter("a")
        third = asyncio.ensure_future(share.enter("a"))
        fourth = asyncio.ensure_future(share.enter("a"))
        await asyncio.sleep(0)
        assert not third.done() and not fourth.done()
        assert await share.enter("b")  # another address is not held back
        assert not await share.enter("a")  # queue full: refused
        share.leave("a")
        assert await asyncio.wait_for(third, 1)
        assert not fourth.done()
        share.leave("a")
        assert await asyncio.wait_for(fourth, 1)
        for _ in range(2):
            share.leave("a")
        share.leave("b")
        assert share._running == {} and share._waiting == {}

    asyncio.run(scenario())
