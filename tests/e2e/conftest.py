"""Browser tests: Playwright driving the system Chromium (installed by .ci/run)."""

import os
import shutil
import subprocess
import sys

import pytest

CHROMIUM = os.environ.get("OXYGIS_TEST_CHROMIUM", "/usr/bin/chromium")
# Flags for a headless root session on a machine with no network but loopback.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# Module scope: Playwright's sync API runs an event loop while it lives, and Django refuses
# database work from a thread with a running loop; so it must be gone after these tests.
@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        message = f"Chromium not found at {CHROMIUM} (scripts/ensure-chromium installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def sign_in(page, base: str, username: str, password: str) -> None:
    """Sign in on the page at ``base`` (a tenant's or the console's address), as a person
    does: the form, the button."""
    page.goto(base + "/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button:has-text('Sign in')")


def run_cli(var_dir, *args, password: str) -> None:
    """Run ``oxygis *args`` as an operator does, against the served instance's data
    folder, with the password on stdin (never an argument)."""
    result = subprocess.run(
        [sys.executable, "-m", "oxygis.cli", *args],
        input=password + "\n",
        capture_output=True,
        text=True,
        env={**os.environ, "OXYGIS_VAR_DIR": str(var_dir)},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def set_password(var_dir, username: str, password: str, tenant: str = "demo") -> None:
    run_cli(var_dir, "user", "--tenant", tenant, "set-password", username, password=password)
