"""S11: the static and dependency gates of every test run.

- bandit over the source, against the reviewed baseline: a new finding fails the run;
  an accepted one carries ``# nosec BXXX # reason`` on its own line (checked here, on
  good and bad examples, as Zulip's custom_check does).
- pip-audit over both hashed lock files, through `oxygis security check`.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.served import oxygis

ROOT = Path(__file__).resolve().parents[2]
BANDIT = Path(sys.executable).with_name("bandit")
BASELINE = ROOT / "bandit-baseline.json"
# An exemption names bandit's test ids and gives its reason after a second "#".
EXEMPTION = re.compile(r"# nosec( B\d{3}(, ?B\d{3})*)? ?(# (?P<reason>\S.*))?$")
NOSEC = re.compile(r"#\s*nosec\b")


def exemption_problem(line: str) -> str | None:
    """Why a source line's bandit exemption is not acceptable, or None."""
    if not NOSEC.search(line):
        return None
    match = EXEMPTION.search(line)
    if match is None or not match.group(1):
        return "a # nosec must name the bandit test it silences (# nosec B603)"
    if not match.group("reason"):
        return "a # nosec must say why, after a second #: # nosec B603 # fixed argv, no shell"
    return None


@pytest.mark.parametrize(
    ("line", "good"),
    [
        ("subprocess.run(argv)  # noqa: S603 # nosec B603 # fixed program, no shell", True),
        ("x = random.random()  # nosec B311 # jitter, not a secret", True),
        ("subprocess.run(argv)  # nosec", False),
        ("subprocess.run(argv)  # nosec B603", False),
        ("subprocess.run(argv)  # nosec because I said so", False),
        ("subprocess.run(argv)  # noqa: S603", True),  # ruff's business, not bandit's
    ],
)
def test_the_exemption_rule_on_examples(line, good):
    """S11: the guard below accepts only named, reasoned exemptions."""
    assert (exemption_problem(line) is None) is good


def test_every_bandit_exemption_names_its_test_and_reason():
    """S11: no blanket or silent # nosec anywhere in the source."""
    problems = []
    for path in sorted((ROOT / "src").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            problem = exemption_problem(line)
            if problem:
                problems.append(f"{path.relative_to(ROOT)}:{number}: {problem}")
    assert not problems, "\n".join(problems)


def test_bandit_finds_nothing_beyond_the_reviewed_baseline():
    """S11: bandit (all severities) on src/, with the project's configuration and the
    reviewed baseline; any new finding fails, named with its file and line."""
    done = subprocess.run(
        [str(BANDIT), "-q", "-r", "src", "-c", "pyproject.toml", "-b", str(BASELINE), "-f", "json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    report = json.loads(done.stdout)
    findings = [
        f"{r['filename']}:{r['line_number']}: {r['test_id']} {r['issue_text']}"
        for r in report["results"]
    ]
    assert not findings, "\n".join(findings)
    assert not report["errors"], report["errors"]
    assert report["metrics"]["_totals"]["loc"] > 10000  # it did read the source


def test_the_baseline_is_reviewed():
    """S11: every accepted finding in the baseline says who accepted it and why."""
    baseline = json.loads(BASELINE.read_text())
    for result in baseline["results"]:
        assert result.get("reviewed", {}).get("reason"), result


def test_the_locks_have_no_known_vulnerability():
    """S11: pip-audit on requirements/base.lock and test.lock: live OSV when reachable,
    else the cached database (OXYGIS_TEST_ADVISORIES_DIR, kept between runs)."""
    cache = os.environ.get(
        "OXYGIS_TEST_ADVISORIES_DIR", str(Path.home() / ".cache" / "oxygis" / "advisories")
    )
    env = {"OXYGIS_SECURITY_ADVISORIES_DIR": cache, "OXYGIS_SECURITY_ADVISORIES_MAX_AGE_DAYS": "0"}
    oxygis("security", "advisories", "update", env=env)  # refreshed when the network allows
    locks = [str(ROOT / "requirements" / name) for name in ("base.lock", "test.lock")]
    done = oxygis(
        "security", "check", "--only", "dependencies", "--lock", locks[0], "--lock", locks[1],
        "--json", env=env,
    )  # fmt: skip
    report = json.loads(done.stdout)
    messages = [f["message"] for f in report["findings"]]
    if messages and messages[0].startswith("no cached advisory database"):
        pytest.skip(
            "no advisory data reachable: OSV is offline from here and nothing is cached at "
            f"{cache} (`oxygis security advisories import FILE` fills it)"
        )
    assert done.returncode == 0, "\n".join(messages)
    assert report["dependencies"]["packages"] > 50
