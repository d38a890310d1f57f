"""S11: pip-audit on hashed lock files, answered offline from a cached OSV export.

The records here are test data in OSV's format (this machine reaches no advisory feed);
the path they take is the real one: `oxygis security advisories import`, pip-audit's
lock parser and OSV service, our cache answering that service."""

import datetime as dt
import json

from oxygis.security.advisories import AdvisoryDatabase, osv_zip
from tests.served import oxygis

OLD_DJANGO = {
    "id": "TEST-2025-0001",
    "aliases": ["CVE-TEST-0001"],
    "summary": "Denial of service in strip_tags() (test record)",
    "published": "2025-05-07T00:00:00Z",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "Django"},
            "ranges": [
                {"type": "ECOSYSTEM", "events": [{"introduced": "5.2"}, {"fixed": "5.2.1"}]}
            ],
        }
    ],
}
WITHDRAWN = {**OLD_DJANGO, "id": "TEST-2025-0002", "withdrawn": "2025-06-01T00:00:00Z"}
LAST_AFFECTED = {
    "id": "TEST-2025-0003",
    "summary": "last_affected range (test record)",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "sqlparse"},
            "ranges": [
                {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"last_affected": "0.4.0"}]}
            ],
        }
    ],
}
LISTED = {
    "id": "TEST-2025-0004",
    "summary": "explicit versions (test record)",
    "affected": [{"package": {"ecosystem": "PyPI", "name": "asgiref"}, "versions": ["3.7.1"]}],
}
HASH = "--hash=sha256:" + "0" * 64


def lock(tmp_path, pins: dict[str, str]):
    path = tmp_path / "old.lock"
    path.write_text(
        "".join(f"{name}=={version} \\\n    {HASH}\n" for name, version in pins.items())
    )
    return path


def env_for(tmp_path, **extra):
    return {
        "OXYGIS_SECURITY_ADVISORIES_DIR": str(tmp_path / "advisories"),
        "OXYGIS_SECURITY_ADVISORIES_ONLINE": "false",
        **extra,
    }


def imported(tmp_path, records, as_of=None):
    export = tmp_path / "export.zip"
    export.write_bytes(osv_zip(records))
    as_of = as_of or dt.date.today().isoformat()
    done = oxygis(
        "security", "advisories", "import", str(export), "--as-of", as_of, env=env_for(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    return done


def test_a_vulnerable_pin_is_reported_with_its_fix(tmp_path):
    """S11: django 5.2.0 in a lock is reported, with the advisory, its alias and the
    release that fixes it; exit 1."""
    assert (
        "4 advisories imported"
        in imported(tmp_path, [OLD_DJANGO, WITHDRAWN, LAST_AFFECTED, LISTED]).stdout
    )
    old = lock(tmp_path, {"django": "5.2.0", "sqlparse": "0.4.0", "asgiref": "3.7.1"})
    done = oxygis(
        "security", "check", "--only", "dependencies", "--lock", str(old), env=env_for(tmp_path)
    )
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(
        "dependencies: 3 packages (old.lock) audited against cached OSV database of"
    )
    assert (
        "dependencies: django 5.2.0: CVE-TEST-0001 (TEST-2025-0001), fixed in 5.2.1: "
        "Denial of service in strip_tags() (test record)"
    ) in lines, lines
    assert any(line.startswith("dependencies: sqlparse 0.4.0: TEST-2025-0003") for line in lines)
    assert any(line.startswith("dependencies: asgiref 3.7.1: TEST-2025-0004") for line in lines)
    assert not any("TEST-2025-0002" in line for line in lines)  # withdrawn
    assert lines[-1] == "3 finding(s)"


def test_the_project_lock_is_clean_against_the_same_database(tmp_path):
    """S11: the pins we ship are past every fix in the database: exit 0."""
    imported(tmp_path, [OLD_DJANGO, LAST_AFFECTED, LISTED])
    done = oxygis("security", "check", "--only", "dependencies", "--json", env=env_for(tmp_path))
    report = json.loads(done.stdout)
    assert done.returncode == 0, report["findings"]
    assert report["dependencies"]["packages"] > 20
    assert report["dependencies"]["vulnerable"] == []


def test_range_semantics_match_osv():
    """S11: introduced/fixed, last_affected and explicit version lists, as OSV reads them."""
    records = {}
    for record in (OLD_DJANGO, LAST_AFFECTED, LISTED, WITHDRAWN):
        name = record["affected"][0]["package"]["name"].lower()
        records.setdefault(name, []).append(record)
    db = AdvisoryDatabase(records, {})

    def ids(name, version):
        return [r["id"] for r in db.matching(name, version)]

    assert ids("Django", "5.2") == ["TEST-2025-0001"]
    assert ids("django", "5.2.0") == ["TEST-2025-0001"]
    assert ids("django", "5.2.1") == []
    assert ids("django", "5.1.9") == []
    assert ids("sqlparse", "0.4.0") == ["TEST-2025-0003"]
    assert ids("sqlparse", "0.4.1") == []
    assert ids("asgiref", "3.7.1") == ["TEST-2025-0004"]
    assert ids("asgiref", "3.7.2") == []


def test_a_stale_or_missing_database_is_a_finding(tmp_path):
    """S11: an audit against old data, or none, must say so (exit 1), never pass."""
    none = oxygis("security", "check", "--only", "dependencies", env=env_for(tmp_path))
    assert none.returncode == 1
    assert none.stdout.startswith("dependencies: no cached advisory database"), none.stdout
    month_ago = (dt.date.today() - dt.timedelta(days=30)).isoformat()
    imported(tmp_path, [LISTED], as_of=month_ago)
    stale = oxygis("security", "check", "--only", "dependencies", env=env_for(tmp_path))
    assert stale.returncode == 1
    assert "dependencies: the advisory database is 30 days old (over 7)" in stale.stdout
    accepted = oxygis(
        "security",
        "check",
        "--only",
        "dependencies",
        env=env_for(tmp_path, OXYGIS_SECURITY_ADVISORIES_MAX_AGE_DAYS="60"),
    )
    assert accepted.returncode == 0, accepted.stdout


def test_a_bad_import_changes_nothing(tmp_path):
    """S11: a truncated or foreign file is refused (exit 2, one line) and the database in
    place stays as it was."""
    imported(tmp_path, [OLD_DJANGO])
    before = (tmp_path / "advisories" / "osv-pypi.zip").read_bytes()
    for content, said in ((b"PK\x03\x04 not really", "not a zip file"), (osv_zip([]), "no OSV")):
        bad = tmp_path / "bad.zip"
        bad.write_bytes(content)
        done = oxygis("security", "advisories", "import", str(bad), env=env_for(tmp_path))
        assert done.returncode == 2 and said in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert (tmp_path / "advisories" / "osv-pypi.zip").read_bytes() == before
    assert not list((tmp_path / "advisories").glob(".incoming-*"))
    status = oxygis("security", "advisories", "status", env=env_for(tmp_path))
    assert json.loads(status.stdout)["records"] == 1


def test_without_a_lock_file_the_installed_packages_are_audited(tmp_path):
    """S11: a wheel install has no lock file beside it: what is installed is audited."""
    from importlib.metadata import version

    installed = version("segno")
    record = {
        "id": "TEST-2025-0005",
        "summary": "the installed segno (test record)",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "segno"}, "versions": [installed]}],
    }
    imported(tmp_path, [record])
    env = env_for(tmp_path, OXYGIS_SECURITY_LOCK_FILES=str(tmp_path / "no.lock"))
    done = oxygis("security", "check", "--only", "dependencies", env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "(installed packages) audited against" in lines[0]
    assert f"dependencies: segno {installed}: TEST-2025-0005, no fix released: " in done.stdout
