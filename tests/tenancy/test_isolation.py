"""C9: requests reach exactly one tenant, chosen from the Host header, or none."""

import ipaddress
from contextlib import contextmanager

from django.db import connections
from django.test import override_settings

from oxygis.platform.provisioning import resume_tenant, suspend_tenant
from oxygis.tenancy.databases import forget_tenant_database
from tests.fixtures import HttpsClient, without_tokens


@contextmanager
def catalog_queries():
    """Collect every SQL statement the catalog connection executes in the block."""
    seen: list[str] = []

    def record(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connections["default"].execute_wrapper(record):
        yield seen


def test_malformed_or_foreign_host_is_404_before_any_database():
    """C9: a host we do not serve gets 404 and not a single query, catalog included."""
    for host in ("evil.example.com", "localhost", "127.0.0.1", "a.b.localhost", "www.localhost"):
        with catalog_queries() as queries:
            response = HttpsClient(host).get("/accounts/login/")
        assert response.status_code == 404, host
        assert len(queries) == 0, host
        assert b"Page not found" in response.content


def test_unknown_tenant_looks_exactly_like_a_foreign_host():
    """C9: an unknown slug costs one catalog lookup and answers the very same 404."""
    with catalog_queries() as queries:
        unknown = HttpsClient("nosuchtenant.localhost").get("/")
    foreign = HttpsClient("evil.example.com").get("/")
    assert unknown.status_code == foreign.status_code == 404
    assert without_tokens(unknown) == without_tokens(foreign)
    assert len(queries) == 1 and "tenancy_tenant" in queries[0]


def test_session_cookie_of_one_tenant_is_anonymous_on_another(alpha, bravo):
    """C9: alpha's session cookie presented to bravo signs nobody in there."""
    a = alpha.client()
    a.sign_in(alpha.owner_username, alpha.owner_password)
    assert a.get("/").status_code == 200

    b = bravo.client()
    b.cookies = a.cookies  # the attacker replays alpha's cookies on bravo's host
    response = b.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_credentials_of_one_tenant_do_not_open_another(alpha, bravo):
    """C9: alpha's member password is unknown on bravo (separate user tables)."""
    from oxygis.tenancy.databases import tenant_context

    with tenant_context(bravo.tenant):
        from django.contrib.auth import get_user_model

        member = get_user_model().objects.get(username="member")
        member.set_password("Bravo-only-password-9!")
        member.save()
    client = bravo.client()
    response = client.post(
        "/accounts/login/", {"username": "member", "password": alpha.member_password}
    )
    assert response.status_code == 200  # the form again, with an error
    assert "correct username and password" in response.content.decode()
    assert client.get("/").status_code == 302  # still anonymous
    # Restore bravo's member for the other tests.
    with tenant_context(bravo.tenant):
        member.set_password(bravo.member_password)
        member.save()


def test_host_spellings_reach_the_same_tenant(alpha):
    """C9: upper case, a trailing dot and an explicit port name the same tenant."""
    slug = alpha.tenant.slug
    for host in (slug.upper() + ".LOCALHOST", f"{slug}.localhost.", f"{slug}.localhost:8443"):
        client = HttpsClient(host)
        client.sign_in("member", alpha.member_password)
        page = client.get("/")
        assert page.status_code == 200, host
        assert "Alpha &lt;Corp&gt; &amp; Co" in page.content.decode()


def test_spoofed_forwarded_host_is_ignored(alpha, bravo):
    """C9: X-Forwarded-Host from a client that is not a trusted proxy changes nothing."""
    client = alpha.client()
    client.sign_in("member", alpha.member_password)
    response = client.get("/", headers={"X-Forwarded-Host": bravo.host})
    assert response.status_code == 200
    assert "Alpha &lt;Corp&gt;" in response.content.decode()
    # ... and X-Forwarded-Proto cannot downgrade or fake the scheme either.
    plain = HttpsClient(alpha.host).get("/accounts/login/", headers={"X-Forwarded-Proto": "http"})
    assert plain.status_code == 200


def test_forwarded_headers_are_honoured_from_a_trusted_proxy(alpha, bravo):
    """C9/C12: behind a configured proxy, its X-Forwarded-Host and -Proto are used."""
    proxies = (ipaddress.ip_network("127.0.0.0/8"),)
    with override_settings(TRUSTED_PROXIES=proxies):
        client = HttpsClient("proxy.internal")
        response = client.get("/accounts/login/", headers={"X-Forwarded-Host": bravo.host})
        assert response.status_code == 200
        assert "Bravo Ltd" in response.content.decode()
        # A plain-HTTP hop reported by the proxy is redirected to HTTPS.
        redirect = client.get(
            "/accounts/login/",
            headers={"X-Forwarded-Host": bravo.host, "X-Forwarded-Proto": "http"},
        )
        assert redirect.status_code == 301
        assert redirect["Location"] == f"https://{bravo.host}/accounts/login/"


def test_suspended_tenant_gets_503_and_its_database_stays_closed(tenant_factory):
    """C9: a suspended tenant's site is a 503 page; its database is never opened."""
    made = tenant_factory(name="Sleepy Co")
    tenant = made.tenant
    suspend_tenant(tenant)
    forget_tenant_database(tenant)
    client = HttpsClient(f"{tenant.slug}.localhost")
    for path in ("/", "/accounts/login/"):
        response = client.post(path, {"username": "admin", "password": made.admin_password})
        assert response.status_code == 503
        assert "suspended" in response.content.decode()
    assert tenant.alias not in connections.settings
    resume_tenant(tenant)
    assert client.get("/accounts/login/").status_code == 200
