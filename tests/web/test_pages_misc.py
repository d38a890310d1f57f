"""Small things a new user noticed (issue 15, item 8): the favicon, the security
policy's form bounds, and links naming the port the service runs on."""

import re

from django.test import override_settings

from oxygis.tenancy.hosts import SERVED_PORT_FILE, adopt_served_port, site_url
from tests.sales.test_views import client_for


def test_every_page_has_a_favicon(alpha, world):
    page = client_for(alpha, "sam").get("/").content.decode()
    assert re.search(r'<link rel="icon" href="/static/oxygis/favicon[.\w]*\.svg"', page)


def test_the_policy_form_refuses_a_length_below_the_platforms_minimum(alpha, world):
    """C13: the form offers what the model accepts: at least 10, the platform's rule."""
    admin = client_for(alpha, "admin")
    page = admin.get("/settings/policy/").content.decode()
    assert 'min="10"' in page and "whitepaper" not in page
    refused = admin.post(
        "/settings/policy/",
        {"min_password_length": "0", "two_factor": "off", "portal_link_days": "30"},
    )
    assert refused.status_code == 200 and "greater than or equal to 10" in refused.content.decode()


def test_commands_name_the_port_the_service_runs_on(tmp_path, monkeypatch):
    """A restore run from another shell prints the restored workspace's address with
    the port `oxygis serve` runs on (it notes it), unless OXYGIS_PUBLIC_PORT says."""
    import os

    monkeypatch.delenv("OXYGIS_PUBLIC_PORT", raising=False)
    gone = 2**22 + 12345  # beyond pid_max's default: no such process
    (tmp_path / SERVED_PORT_FILE).write_text(f"8443 {gone}\n")
    with override_settings(VAR_DIR=tmp_path, PUBLIC_PORT=443):
        adopt_served_port()  # a note left by a server that is gone: ignored
        assert site_url("copy") == "https://copy.localhost/"
    (tmp_path / SERVED_PORT_FILE).write_text(f"8443 {os.getpid()}\n")  # a live one
    with override_settings(VAR_DIR=tmp_path, PUBLIC_PORT=443):
        adopt_served_port()
        assert site_url("copy") == "https://copy.localhost:8443/"
    monkeypatch.setenv("OXYGIS_PUBLIC_PORT", "443")
    with override_settings(VAR_DIR=tmp_path, PUBLIC_PORT=443):
        adopt_served_port()
        assert site_url("copy") == "https://copy.localhost/"


def test_revoking_an_api_key_asks_first(alpha, world):
    """Destructive actions ask: the revoke button leads to a question; only the
    confirmed POST revokes."""
    from oxygis.accounts.apikeys import issue_key
    from oxygis.accounts.models import ApiKey
    from oxygis.tenancy.databases import tenant_context

    with tenant_context(world.tenant):
        key, _token = issue_key(world.user("sam"), name="ERP sync", scope="read", days=30)
    sam = client_for(alpha, "sam")
    url = f"/accounts/api-keys/{key.pk}/revoke/"
    asked = sam.post(url)
    assert asked.status_code == 200 and "ERP sync" in asked.content.decode()
    with tenant_context(world.tenant):
        assert ApiKey.objects.get(pk=key.pk).revoked_at is None
    assert sam.post(url, {"confirmed": "yes"}).status_code == 302
    with tenant_context(world.tenant):
        assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
