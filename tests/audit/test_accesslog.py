"""C17: one JSON access-log line per request, with who, from where, what and how long,
and never a secret: each kind of secret is sent and every line is searched for it."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from oxygis.accounts.apikeys import issue_key
from oxygis.audit import accesslog
from oxygis.tenancy.databases import tenant_context
from tests.fixtures import HttpsClient


@pytest.fixture
def access_log(tmp_path, monkeypatch):
    base = tmp_path / "logs" / "access.log"
    monkeypatch.setattr(settings, "ACCESS_LOG_FILE", str(base))
    accesslog.reset_logger()
    yield base
    accesslog.reset_logger()


def lines_of(base: Path) -> list[dict]:
    return [
        json.loads(text)
        for _, path in accesslog.log_files(base)
        for text in path.read_text().splitlines()
    ]


def test_every_request_is_one_line_with_its_fields(alpha, access_log):
    """C17: the line of a signed-in page view names the tenant, user, route, status, size,
    duration and the request id returned in X-Request-ID."""
    client = alpha.client()
    client.sign_in(alpha.owner_username, alpha.owner_password)
    response = client.get("/sales/orders/?sort=number&q=abc", HTTP_USER_AGENT="Probe/1.0")
    line = lines_of(access_log)[-1]
    assert line["request_id"] == response["X-Request-ID"]
    assert line["tenant"] == alpha.tenant.slug and line["user"] == alpha.owner_username
    assert line["user_id"] and line["ip"] == "127.0.0.1" and line["method"] == "GET"
    assert line["route"] == "orders" and line["path"] == "/sales/orders/"
    assert line["query"] == "sort=number&q=abc" and line["status"] == 200
    assert line["bytes"] == len(response.content) and line["duration_ms"] >= 0
    assert line["user_agent"] == "Probe/1.0"
    assert datetime.fromisoformat(line["time"].replace("Z", "+00:00")).tzinfo is not None


def test_no_secret_reaches_the_access_log(alpha, access_log):
    """C17: a customer-link token, reset and invitation tokens, an API key, a password, a
    session cookie and a TOTP code are each sent; none is in any line."""
    with tenant_context(alpha.tenant):
        admin = get_user_model().objects.get(username=alpha.owner_username)
        key, token = issue_key(admin, name="log test", scope="read", days=1)
    link_token = "Ab3" + "x" * 40 + "Secret1"
    reset_token = "cq4b1z-0123456789abcdef0123456789abcdef"
    totp_code = "918273"
    client = alpha.client()
    client.get(f"/portal/order/?t={link_token}")
    client.get(f"/accounts/reset/MQ/{reset_token}/")
    client.get(f"/accounts/invitation/MQ/{reset_token}/")
    client.get(f"/accounts/reset/MQ/{reset_token}/?next=/x&token={link_token}")
    client.post("/accounts/login/", {"username": alpha.owner_username, "password": "Wrong-1"})
    client.sign_in(alpha.owner_username, alpha.owner_password)
    client.post("/accounts/2fa/verify/", {"code": totp_code})
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    api = HttpsClient(alpha.host, HTTP_AUTHORIZATION=f"Bearer {token}")
    api_answer = api.get("/api/v1/orders")
    text = "\n".join(p.read_text() for _, p in accesslog.log_files(access_log))
    assert len(text.splitlines()) >= 8
    for secret in (
        link_token,
        reset_token,
        token,
        alpha.owner_password,
        "Wrong-1",
        session,
        totp_code,
    ):
        assert secret not in text, f"a secret reached the access log: {secret[:6]}..."
    assert "[redacted]" in text
    api_line = next(
        line for line in lines_of(access_log) if line["request_id"] == api_answer["X-Request-ID"]
    )
    assert api_line["api_key_id"] == key.pk and api_line["user"] == alpha.owner_username


def test_an_unknown_host_is_logged_too(access_log):
    """C17: a request for no tenant is logged (a 404), with the host it asked for."""
    answer = HttpsClient("nobody-here.localhost").get("/")
    line = lines_of(access_log)[-1]
    assert answer.status_code == 404 and line["status"] == 404
    assert line["tenant"] is None and line["host"] == "nobody-here.localhost"


def test_a_request_id_is_taken_only_from_a_trusted_proxy(alpha, access_log):
    """C17: X-Request-ID sent by a client is not trusted (ours replaces it)."""
    answer = alpha.client().get("/accounts/login/", HTTP_X_REQUEST_ID="client-chosen-id-1")
    assert answer["X-Request-ID"] != "client-chosen-id-1"


def test_logs_search_filters_and_formats(alpha, bravo, access_log):
    """C17: ``oxygis logs search`` by tenant, status class and time, as a table or JSON;
    a bad time is one line with exit code 2."""
    alpha.client().get("/no-such-page/")
    bravo.client().get("/accounts/login/")
    out = StringIO()
    call_command(
        "logs",
        "search",
        "--tenant",
        alpha.tenant.slug,
        "--status",
        "4xx",
        "--since",
        "1h",
        "--format",
        "json",
        stdout=out,
        stderr=StringIO(),
    )
    found = [json.loads(line) for line in out.getvalue().splitlines()]
    assert found and all(
        f["tenant"] == alpha.tenant.slug and 400 <= f["status"] < 500 for f in found
    )
    assert any(f["path"] == "/no-such-page/" for f in found)
    table = StringIO()
    call_command("logs", "search", "--tenant", bravo.tenant.slug, stdout=table, stderr=StringIO())
    assert table.getvalue().startswith("TIME") and "/accounts/login/" in table.getvalue()
    assert alpha.tenant.slug not in table.getvalue()
    with pytest.raises(CommandError) as failed:
        call_command("logs", "search", "--since", "yesterday-ish")
    assert failed.value.returncode == 2


def test_old_daily_files_are_deleted_by_retention(access_log, monkeypatch):
    """C17: daily files older than OXYGIS_ACCESS_LOG_RETENTION_DAYS go; newer stay."""
    monkeypatch.setattr(settings, "ACCESS_LOG_RETENTION_DAYS", 30)
    access_log.parent.mkdir(parents=True, exist_ok=True)
    today = datetime.now(UTC).date()
    for age in (0, 29, 31, 400):
        accesslog.daily_path(access_log, today - timedelta(days=age)).write_text("{}\n")
    assert accesslog.prune_files() == 2
    kept = {day for day, _ in accesslog.log_files(access_log)}
    assert kept == {today, today - timedelta(days=29)}
    assert isinstance(next(iter(kept)), date)
