"""The production recipe in deploy/ (docs/deployment.md), checked as far as this machine
allows: it has no Docker daemon, so the image is not built and the compose file not run.
What can be checked is checked: every Oxygis command the files run exists and accepts
its options, no secret is written in them, what the image copies exists, the systemd
units pass `systemd-analyze verify`, and the HA configuration keeps the settings the
failover tests rely on."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.core.management import load_command_class
from django.core.management.base import CommandError

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def assert_oxygis_command(argv: list[str]) -> None:
    """``oxygis NAME ARGS``: NAME is a command of ours and ARGS parse."""
    assert argv[0].endswith("oxygis"), argv
    from django.core.management import get_commands

    name = argv[1]
    assert name in get_commands(), f"no command {name!r}"
    command = load_command_class(get_commands()[name], name)
    parser = command.create_parser("oxygis", name)
    try:
        parser.parse_args(argv[2:])
    except (CommandError, SystemExit) as exc:
        raise AssertionError(f"{shlex.join(argv)}: {exc}") from None


def compose_commands() -> list[list[str]]:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    found = []
    for service in compose["services"].values():
        command = service.get("command")
        if command is None:
            continue
        if command[:2] == ["sh", "-c"]:
            found += [shlex.split(part) for part in command[2].split("&&")]
        else:
            found.append(command)
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    found.append(json_list(re.search(r"^CMD (\[.*\])$", dockerfile, re.M)[1]))
    return found


def json_list(text: str) -> list[str]:
    import json

    return json.loads(text)


def test_every_command_of_the_recipe_exists_and_parses():
    """The compose services, the image's CMD and the systemd units run real commands."""
    commands = compose_commands()
    for unit in (DEPLOY / "systemd").glob("*.service"):
        for line in unit.read_text().splitlines():
            if line.startswith(("ExecStart=", "ExecStartPre=")):
                commands.append(shlex.split(line.split("=", 1)[1]))
    assert len(commands) >= 6
    for argv in commands:
        assert_oxygis_command(argv)


def test_no_secret_is_written_in_the_recipe():
    """S10: secrets come from files (OXYGIS_*_FILE, Docker secrets), never inline."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name, service in compose["services"].items():
        for key in service.get("environment") or {}:
            if re.search(r"PASSWORD|SECRET|KEY|TOKEN", key) and not key.endswith("_FILE"):
                pytest.fail(f"{name}: {key} is given inline")
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not re.search(r"(?<!\w)password:\s*[^\s\"'${]", text, re.I), path
            assert "BEGIN PRIVATE KEY" not in text, path


def test_what_the_image_copies_exists():
    for source in re.findall(r"^COPY (\S+)", (DEPLOY / "Dockerfile").read_text(), re.M):
        assert (ROOT / source).exists(), source


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze here")
def test_the_systemd_units_verify(tmp_path):
    """The units as systemd reads them (paths pointed at this checkout's environment)."""
    venv = ROOT / ".venv"
    for unit in (DEPLOY / "systemd").glob("*.service"):
        text = unit.read_text().replace("/opt/oxygis/.venv", str(venv))
        text = re.sub(r"^(User|Group)=oxygis$", r"\1=root", text, flags=re.M)
        (tmp_path / unit.name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", *map(str, sorted(tmp_path.glob("*.service")))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        # This machine runs no systemd: what it cannot look up is not the units' fault.
        if line.strip() and not re.search(r"EnvironmentFile|/etc/oxygis|not booted|D-Bus", line)
    ]
    assert problems == [], problems


def test_the_ha_configuration_keeps_what_the_failover_tests_rely_on():
    """C6: the production Patroni settings keep synchronous replication, promote only a
    standby that is not behind, hand over at once when PostgreSQL dies, and rewind."""
    patroni = yaml.safe_load((DEPLOY / "ha" / "patroni.yml").read_text())
    dcs = patroni["bootstrap"]["dcs"]
    assert dcs["synchronous_mode"] is True
    assert dcs["maximum_lag_on_failover"] == 0
    assert dcs["primary_start_timeout"] == 0
    assert dcs["postgresql"]["use_pg_rewind"] is True
    assert dcs["postgresql"]["parameters"]["synchronous_commit"] == "on"
    hba = patroni["postgresql"]["pg_hba"]
    assert not any(" trust" in rule for rule in hba if rule.startswith("host"))
    pgbouncer = (DEPLOY / "ha" / "pgbouncer.ini").read_text()
    assert re.search(r"^pool_mode = session", pgbouncer, re.M)
    assert re.search(r"^auth_query = ", pgbouncer, re.M)
