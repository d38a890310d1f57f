"""Findings 12-14 of the attack run (issue 10): cookies across tenants, certificates
minted for any name, headers on static files and the TLS cipher list. Each fails on the
code before the fix."""

import os
import ssl
import time

import pytest

from oxygis.core import limiter
from oxygis.web.tls import HostCertificates
from tests.served import Served, cookies_of, free_port
from tests.tenancy.test_cli import oxygis
from tests.web.test_headers import assert_security_headers


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    server = Served(tmp_path_factory.mktemp("findings"), free_port())
    yield server
    if server.process.poll() is None:
        server.stop()
    if os.environ.get("OXYGIS_DATABASE_URL"):  # shared test catalog: remove the demo
        oxygis("tenant", "drop", "demo", "--yes")


def every_set_cookie(response) -> list[str]:
    return [c.split("=", 1)[0] for c in response.headers.get_all("Set-Cookie") or []]


def test_finding_12_flash_messages_live_in_the_session_not_in_a_cookie(alpha, bravo):
    """C9 (finding 12): a flash message set on one tenant travels in no cookie of its
    own (so none can be replayed on another tenant's host); every cookie any response
    sets is host-only (__Host-)."""
    client = alpha.client()
    responses = [client.get("/accounts/login/")]
    responses.append(
        client.post("/accounts/login/", {"username": "member", "password": alpha.member_password})
    )
    responses.append(client.post("/accounts/email/", {"email": "member-new@alpha.example"}))
    shown = client.get("/accounts/security/")
    responses.append(shown)
    assert "E-mail address changed." in shown.content.decode()
    names = {name for r in responses for name in r.cookies}
    assert "messages" not in names
    assert all(name.startswith("__Host-") for name in names), names
    # A messages cookie signed with the service key (the old storage) means nothing here.
    from django.contrib.messages import constants
    from django.contrib.messages.storage.cookie import CookieStorage
    from django.http import HttpRequest

    forged = CookieStorage(HttpRequest())._encode([_message(constants.ERROR, "Pwned")])
    stranger = bravo.client()
    stranger.cookies["messages"] = forged
    page = stranger.get("/accounts/login/")
    assert "Pwned" not in page.content.decode()
    client.post("/accounts/email/", {"email": "member@alpha.example"})


def _message(level, text):
    from django.contrib.messages.storage.base import Message

    return Message(level, text)


def test_finding_13_certificates_only_for_existing_tenants(served):
    """C12/abuse (finding 13): 20 made-up names get the default certificate and leave no
    key on disk; an existing tenant's host gets its own certificate."""
    hosts = served.var_dir / "tls" / "hosts"
    before = set(hosts.glob("*.pem")) if hosts.exists() else set()
    unchecked = ssl.create_default_context()
    unchecked.check_hostname, unchecked.verify_mode = False, ssl.CERT_NONE
    for i in range(20):
        response = served.request(f"ghost{i}.localhost", "GET", "/", context=unchecked)
        assert response.status == 404
    after = set(hosts.glob("*.pem")) if hosts.exists() else set()
    assert after == before, sorted(p.name for p in after - before)
    made = oxygis(
        "tenant",
        "create",
        "cert-owner",
        "--name",
        "Owner",
        env={"OXYGIS_VAR_DIR": str(served.var_dir)},
    )
    assert made.returncode == 0, made.stderr
    try:
        page = served.request("cert-owner.localhost", "GET", "/accounts/login/")
        assert page.status == 200  # the certificate names the host: verification passed
        assert (hosts / "cert-owner.localhost.pem").exists()
    finally:
        oxygis("tenant", "drop", "cert-owner", "--yes", env={"OXYGIS_VAR_DIR": str(served.var_dir)})


def test_finding_13_issuing_is_rate_limited_and_bounded(tmp_path):
    """C12/abuse (finding 13): even for names we serve, new certificates come at the
    shared limiter's rate, and at most MAX_FILES stay on disk, MAX_CONTEXTS in memory."""
    from oxygis.web.tls import ensure_local_tls

    ensure_local_tls(tmp_path, ["localhost"])
    certificates = HostCertificates(tmp_path, served=lambda name: True)
    certificates.MAX_FILES, certificates.MAX_CONTEXTS = 5, 3
    burst, extra = int(limiter.CERTIFICATES.burst), 40
    started = time.monotonic()
    issued = [certificates.context_for(f"t{i}.localhost") for i in range(burst + extra)]
    refilled = (time.monotonic() - started) * limiter.CERTIFICATES.per_second
    assert all(c is not None for c in issued[:burst])
    beyond = sum(c is not None for c in issued[burst:])
    assert beyond <= refilled + 1 and beyond < extra  # past the burst: the rate, no more
    assert len(list((tmp_path / "hosts").glob("*.pem"))) <= 5
    assert len(certificates._contexts) <= 3


def test_finding_14_static_files_carry_the_security_headers(alpha):
    """S3/C12 (finding 14): static files get the same CSP, framing and other headers as
    pages (a header grader gave them C)."""
    from django.templatetags.static import static
    from django.test import Client

    stylesheet = static("oxygis/base.css")  # the hashed name the pages link to
    response = alpha.client().get(stylesheet)
    assert response.status_code == 200
    assert_security_headers(response)
    redirect = Client(HTTP_HOST=alpha.host).get(stylesheet)  # plain HTTP
    assert redirect.status_code == 301
    assert "Content-Security-Policy" in redirect and redirect["X-Frame-Options"] == "DENY"


def test_finding_14_tls_offers_only_aead_suites(served):
    """C12 (finding 14): a TLS 1.2 client offering only CBC suites gets no connection;
    one offering AES-GCM or ChaCha20 does."""
    cbc = served.tls_context(maximum_version=ssl.TLSVersion.TLSv1_2)
    cbc.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES128-SHA")
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        served.request("demo.localhost", "GET", "/accounts/login/", context=cbc)
    aead = served.tls_context(maximum_version=ssl.TLSVersion.TLSv1_2)
    aead.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305")
    page = served.request("demo.localhost", "GET", "/accounts/login/", context=aead)
    assert page.status == 200 and page.tls_version == "TLSv1.2"
    assert "__Host-oxygis_csrf" in cookies_of(page)
    assert every_set_cookie(page) and all(n.startswith("__Host-") for n in every_set_cookie(page))
