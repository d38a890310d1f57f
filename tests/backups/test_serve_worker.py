"""``oxygis serve`` runs the backup worker: within its first minutes, the catalog and the
demo tenant have good backups on three sites (C1, C3), and the demo administrator's
side-by-side restore from the backups page is carried out (C4)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from tests.served import Served, cookies_of, free_port, sign_in_over_https


def test_serve_leaves_good_backups_of_catalog_and_demo(tmp_path, own_catalog):
    """C1, C3: a fresh `oxygis serve` backs up the catalog and the demo tenant, verified
    on its three embedded sites, without anyone asking."""
    env = {"OXYGIS_WORKER_INTERVAL": "2", **own_catalog}
    served = Served(tmp_path, free_port(), worker=True, env=env)
    try:
        run_env = {**os.environ, "OXYGIS_VAR_DIR": str(tmp_path), **env}
        deadline = time.monotonic() + 240
        while True:
            status = subprocess.run(
                [sys.executable, "-m", "oxygis.cli", "backup", "status"],
                env=run_env,
                capture_output=True,
                text=True,
                check=False,
            )
            lines = {line.split()[0]: line for line in status.stdout.splitlines() if line.strip()}
            done = all(k in lines and "never" not in lines[k] for k in ("catalog", "demo"))
            if status.returncode == 0 and done:
                break
            assert time.monotonic() < deadline, (
                f"no good backups:\n{status.stdout}{served.output()}"
            )
            time.sleep(2)
        listing = subprocess.run(
            [sys.executable, "-m", "oxygis.cli", "backup", "list", "--tenant", "demo"],
            env=run_env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert " good " in listing
        for site in "abc":
            assert any((tmp_path / "backups" / f"site-{site}").rglob("dump.age"))
        identity = tmp_path / "keys" / "backup-identity.txt"
        assert identity.stat().st_mode & 0o777 == 0o600
        assert "backup private key" in served.output()
        _restore_from_the_backups_page(served)
    finally:
        assert served.stop() == 0


def _restore_from_the_backups_page(served) -> None:
    """C4: the demo administrator signs in over HTTPS, asks for a side-by-side restore on
    Settings -> Backups; the server's worker makes the new workspace, which answers."""
    import re
    from urllib.parse import urlencode

    password = re.search(r"password: (\S+)", served.output())[1]
    host = "demo.localhost"
    signed_in = sign_in_over_https(served, host, "admin", password)
    assert signed_in.status == 302
    jar = cookies_of(signed_in)
    cookie = "; ".join(f"{k}={v}" for k, v in jar.items())
    page = served.request(host, "GET", "/settings/backups/", headers={"Cookie": cookie})
    assert page.status == 200, page.text[:500]
    action = re.search(r'action="(/settings/backups/[0-9a-f-]+/restore/)"', page.text)[1]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
    posted = served.request(
        host,
        "POST",
        action,
        body=urlencode({"csrfmiddlewaretoken": token}),
        headers={
            "Cookie": cookie,
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": f"https://{host}:{served.port}",
        },
    )
    assert posted.status == 302, posted.text[:500]
    deadline = time.monotonic() + 120
    while True:
        page = served.request(host, "GET", "/settings/backups/", headers={"Cookie": cookie})
        found = re.search(r'href="https://(demo-restored-\d{8}\.localhost)(?::\d+)?/"', page.text)
        if found:
            break
        assert 'data-restore="failed"' not in page.text, page.text
        assert time.monotonic() < deadline, "the restore was not carried out"
        time.sleep(1)
    restored = served.request(found[1], "GET", "/accounts/login/")
    assert restored.status == 200
