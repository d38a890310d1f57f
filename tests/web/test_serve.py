"""C12: ``oxygis serve`` as a user runs it: a real server speaking HTTPS only.

Starts the real server on a free port with a fresh data folder, signs in as the demo
administrator with the printed one-time password, then stops it with Ctrl-C."""

import http.client
import os
import re
import ssl
import subprocess
import sys
from urllib.parse import urlencode

import pytest

from tests.served import Served, cookies_of, free_port
from tests.tenancy.test_cli import assert_one_line_error, oxygis


@pytest.fixture
def served(tmp_path):
    server = Served(tmp_path, free_port())
    yield server
    if server.process.poll() is None:
        server.stop()
    if os.environ.get("OXYGIS_DATABASE_URL"):  # shared test catalog: remove the demo
        oxygis("tenant", "drop", "demo", "--yes")


def test_serve_gives_https_sign_in_for_the_demo_admin(served):
    """C12: a fresh start serves the demo over HTTPS; the printed password signs in."""
    output = served.output()
    password = re.search(r"password: (\S+)", output)[1]
    assert f"https://demo.localhost:{served.port}/" in output
    assert "ca.pem" in output

    home = served.request("demo.localhost", "GET", "/")
    assert home.status == 302 and home.getheader("Location") == "/accounts/login/?next=/"
    login = served.request("demo.localhost", "GET", "/accounts/login/")
    assert login.status == 200 and login.tls_version in ("TLSv1.2", "TLSv1.3")
    assert "max-age=" in login.getheader("Strict-Transport-Security")
    assert "frame-ancestors 'none'" in login.getheader("Content-Security-Policy")

    csrf_cookie = cookies_of(login)["__Host-oxygis_csrf"]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)[1]
    signed_in = served.request(
        "demo.localhost",
        "POST",
        "/accounts/login/",
        body=urlencode({"username": "admin", "password": password, "csrfmiddlewaretoken": token}),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"__Host-oxygis_csrf={csrf_cookie}",
            "Origin": f"https://demo.localhost:{served.port}",
        },
    )
    assert signed_in.status == 302, signed_in.text
    session = cookies_of(signed_in)["__Host-oxygis_session"]
    page = served.request(
        "demo.localhost", "GET", "/", headers={"Cookie": f"__Host-oxygis_session={session}"}
    )
    assert page.status == 200 and "Demo Company" in page.text and "Sam Seller" in page.text

    # The console host and an unknown host, through the same server.
    assert served.request("console.localhost", "GET", "/").status == 302  # to staff sign-in
    assert served.request("console.localhost", "GET", "/accounts/login/").status == 200
    # An unknown host is given no certificate of its own (see test_tls_hardening.py);
    # a client that does not check gets the one 404.
    unchecked = ssl.create_default_context()
    unchecked.check_hostname, unchecked.verify_mode = False, ssl.CERT_NONE
    assert served.request("nosuch.localhost", "GET", "/", context=unchecked).status == 404

    # A tenant created while the server runs gets a valid certificate for its host.
    made = oxygis(
        "tenant",
        "create",
        "late-comer",
        "--name",
        "Late",
        env={"OXYGIS_VAR_DIR": str(served.var_dir)},
    )
    assert made.returncode == 0, made.stderr
    late = served.request("late-comer.localhost", "GET", "/accounts/login/")
    assert late.status == 200 and "Late" in late.text
    oxygis("tenant", "drop", "late-comer", "--yes", env={"OXYGIS_VAR_DIR": str(served.var_dir)})

    assert served.stop() == 0  # Ctrl-C stops cleanly


def test_serve_refuses_old_tls_and_plain_http(served):
    """C12: TLS 1.1 and plain HTTP get no page at all."""
    with pytest.warns(DeprecationWarning):  # Python itself discourages TLS 1.1
        old = served.tls_context(
            minimum_version=ssl.TLSVersion.MINIMUM_SUPPORTED,
            maximum_version=ssl.TLSVersion.TLSv1_1,
        )
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        served.request("demo.localhost", "GET", "/", context=old)
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        conn.request("GET", "/", headers={"Host": "demo.localhost"})
        conn.getresponse().read()
    conn.close()


def test_second_start_reuses_what_exists(tmp_path):
    """C12: a restart keeps the CA and the demo; no new password is printed."""
    first = Served(tmp_path, free_port())
    ca = (tmp_path / "tls" / "ca.pem").read_bytes()
    assert first.stop() == 0
    second = Served(tmp_path, free_port())
    try:
        assert second.request("demo.localhost", "GET", "/accounts/login/").status == 200
        assert (tmp_path / "tls" / "ca.pem").read_bytes() == ca
        assert "password:" not in second.output()
        assert oct((tmp_path / "tls" / "ca-key.pem").stat().st_mode & 0o777) == "0o600"
    finally:
        assert second.stop() == 0
        if os.environ.get("OXYGIS_DATABASE_URL"):
            oxygis("tenant", "drop", "demo", "--yes")


PRODUCTION_OK = {
    "OXYGIS_ENV": "production",
    "OXYGIS_SECRET_KEY": "x7-" + "k3y-Material-0123456789-abcdefghijklmnopqrstuvwxyz",
    "OXYGIS_DOMAIN": "oxygis.example",
    "OXYGIS_DATABASE_URL": "postgresql://oxygis@db.internal:5432/catalog",
    "OXYGIS_BACKUP_SITES": "az://backups/a s3://oxygis-backups/b file:///srv/backups/c",
    "OXYGIS_BACKUP_RECIPIENTS": "age1u5t0lpgk5x3xyx4ne22hea9ky2aqv48zh40c2fzngu9k2hwt4dys60z2ur",
    "OXYGIS_BACKUP_SIGNING_KEY": "-----BEGIN PRIVATE KEY-----\n(the operator's)\n",
}


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ({"OXYGIS_SECRET_KEY": ""}, "OXYGIS_SECRET_KEY"),
        ({"OXYGIS_DEBUG": "true"}, "OXYGIS_DEBUG must be false"),
        ({"OXYGIS_DOMAIN": None}, "OXYGIS_DOMAIN"),
        ({"OXYGIS_DATABASE_URL": None}, "OXYGIS_DATABASE_URL"),
        ({"OXYGIS_BACKUP_SITES": "az://backups/a s3://b/b"}, "at least 3 backup sites"),
        ({"OXYGIS_BACKUP_RECIPIENTS": None}, "OXYGIS_BACKUP_RECIPIENTS"),
        ({"OXYGIS_BACKUP_SIGNING_KEY": None}, "OXYGIS_BACKUP_SIGNING_KEY"),
    ],
)
def test_production_refuses_insecure_settings(override, fragment):
    """C12, C3: with OXYGIS_ENV=production, missing or unsafe settings (backups without
    three sites or keys included) stop the start."""
    env = {k: v for k, v in {**PRODUCTION_OK, **override}.items() if v is not None}
    removed = {k for k, v in override.items() if v is None}
    full = {k: v for k, v in os.environ.items() if k not in removed}
    result = subprocess.run(
        [sys.executable, "-m", "oxygis.cli", "serve"],
        capture_output=True,
        text=True,
        env={**full, **env},
        timeout=60,
    )
    assert_one_line_error(result, "refusing to start in production", fragment)


def test_production_deploy_check_is_clean():
    """C12: Django's deployment checklist reports nothing for the production settings."""
    result = oxygis("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_OK)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
