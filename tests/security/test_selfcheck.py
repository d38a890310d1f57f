"""S11: `oxygis security check --url` against real HTTPS servers: ours (every kind of host
we serve grades A+, speaks only TLS 1.2/1.3 with forward-secret AEAD suites) and a
deliberately weak one (every fault found, one line each, exit 1)."""

import json
import os
import stat

from django.conf import settings
from django.test import override_settings

from oxygis.security.datadir import check_data_folder
from tests.security.weak_server import WeakServer
from tests.served import oxygis


def check(*args):
    return oxygis("security", "check", *args, env={"OXYGIS_SECURITY_ADVISORIES_ONLINE": "false"})


def test_every_kind_of_host_we_serve_grades_a_plus(served, ca_file, alpha):
    """S11: a tenant's sign-in page, the portal and the console: A+ by the Observatory's
    rules, no failed header test, TLS 1.0/1.1 refused, no weak suite, a valid
    certificate."""
    for host, path in (
        (alpha.host, "/accounts/login/"),
        (alpha.host, "/portal/order/"),
        ("console.localhost", "/accounts/login/"),
    ):
        url = f"https://{host}:{served.port}{path}"
        done = check(
            "--url", url, "--connect", "127.0.0.1", "--cafile", ca_file,
            "--only", "headers", "--only", "tls", "--json",
        )  # fmt: skip
        report = json.loads(done.stdout)
        assert done.returncode == 0, (url, report["findings"])
        assert report["headers"]["grade"] == "A+", report["headers"]
        assert not [t for t in report["headers"]["tests"] if not t["pass"]]
        tls = report["tls"]
        assert tls["protocols"]["TLSv1.2"] and tls["protocols"]["TLSv1.3"]
        assert not tls["protocols"].get("TLSv1.0") and not tls["protocols"].get("TLSv1.1")
        assert tls["ciphers"] and not tls["weak_ciphers"]
        assert tls["certificate_error"] is None


def test_a_weak_server_is_found_out_one_line_per_finding(tmp_path):
    """S11: missing headers, an unflagged session cookie, an http script, a suite without
    forward secrecy, an untrusted certificate that expires within days: exit 1, each a
    line naming its check."""
    with WeakServer(tmp_path) as weak:
        url = f"https://{weak.host}:{weak.port}/"
        done = check("--url", url, "--connect", "127.0.0.1", "--only", "headers", "--only", "tls")
        assert done.returncode == 1, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        # Not trusted: the headers could not even be fetched over verified TLS.
        assert any(line.startswith("headers: TLS with weak.localhost") for line in lines), lines
        assert any("certificate not trusted" in line for line in lines), lines
        assert any("AES128-SHA" in line and line.startswith("tls:") for line in lines), lines
        assert "Traceback" not in done.stdout + done.stderr

        trusted = check(
            "--url", url, "--connect", "127.0.0.1", "--cafile", weak.cafile,
            "--only", "headers", "--only", "tls", "--json",
        )  # fmt: skip
        report = json.loads(trusted.stdout)
        assert trusted.returncode == 1
        failed = {t["result"] for t in report["headers"]["tests"] if not t["pass"]}
        assert {
            "csp-not-implemented",
            "hsts-not-implemented",
            "x-frame-options-not-implemented",
            "x-content-type-options-not-implemented",
            "cookies-session-without-secure-flag",
            "sri-not-implemented-and-external-scripts-not-loaded-securely",
        } <= failed
        assert report["headers"]["grade"] == "F"
        assert report["tls"]["weak_ciphers"] == ["AES128-SHA"]
        assert report["tls"]["protocols"]["TLSv1.3"] is False
        messages = [f["message"] for f in report["findings"]]
        assert any(m.startswith("certificate expires in 4 days") for m in messages), messages


def test_usage_errors_are_one_line_and_exit_2(tmp_path):
    """S11: what cannot run says why, never a traceback."""
    for args, said in (
        (("--connect", "127.0.0.1"), "--connect and --cafile go with --url"),
        (("--only", "tls"), "the headers and tls checks need --url"),
        (("--lock", str(tmp_path / "nope.lock")), "no such lock file"),
        (("--url", "ftp://example"), "not an http(s) address"),
    ):
        done = check(*args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert said in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_an_unreachable_address_is_a_finding_not_a_crash():
    """S11: a host that does not answer is reported (exit 1), not skipped."""
    done = check("--url", "https://gone.localhost:9/", "--connect", "127.0.0.1", "--only", "tls")
    assert done.returncode == 1
    assert done.stdout.startswith("tls: cannot connect to 127.0.0.1:9"), done.stdout


def test_the_data_folder_must_be_the_services_alone(tmp_path):
    """S11: a data folder others can enter, a secret others can read, a file anyone can
    write: each a finding; the same folder tightened: none."""
    root = tmp_path / "var"
    (root / "tls").mkdir(parents=True)
    (root / "secret_key").write_text("x")
    (root / "tls" / "ca.key").write_text("x")
    (root / "catalog.sqlite3").write_text("x")
    os.chmod(root, 0o755)  # noqa: S103 - the fault under test
    os.chmod(root / "secret_key", 0o644)
    os.chmod(root / "tls" / "ca.key", 0o640)
    os.chmod(root / "catalog.sqlite3", 0o666)  # noqa: S103 - the fault under test
    problems = check_data_folder(root)
    assert any("open to others" in p for p in problems), problems
    assert any(p.startswith("secret secret_key is readable by others") for p in problems)
    assert any(p.startswith("secret tls/ca.key is readable by others") for p in problems)
    assert any(p.startswith("catalog.sqlite3 is writable by anyone") for p in problems)
    os.chmod(root, 0o700)
    for path in (root / "secret_key", root / "tls" / "ca.key", root / "catalog.sqlite3"):
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    assert check_data_folder(root) == []


def test_the_test_runs_own_data_folder_passes():
    """S11: the folder `oxygis` makes for itself is private from the start."""
    with override_settings(VAR_DIR=settings.VAR_DIR):
        assert check_data_folder() == []
