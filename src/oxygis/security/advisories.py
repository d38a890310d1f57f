"""The dependency audit (S11): pip-audit on the hashed lock files, online or not.

pip-audit reads the locks (every pin hashed, nothing resolved or installed) and asks its
OSV service about each pin. With the network, that is OSV's live API. Without it (an
air-gapped host, a CI runner that reaches only a package mirror), the same pip-audit
service is answered from a cached copy of OSV's PyPI export: a zip of OSV records kept
under ``VAR_DIR/advisories/``, refreshed by ``oxygis security advisories update`` (or
the daily scan) when the network is there, or imported from a file carried in.

The cached answer is computed as OSV computes it (ECOSYSTEM ranges, explicit version
lists, withdrawn records skipped), so both paths report the same advisories.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import requests
from django.conf import settings
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

log = logging.getLogger("oxygis.security.advisories")

ARCHIVE = "osv-pypi.zip"
SOURCE = "source.json"
OFFLINE_URL = "https://osv.offline.invalid/v1/query"  # answered by CachedOsvAdapter
DOWNLOAD_LIMIT = 512 * 1024 * 1024


class AdvisoryError(Exception):
    """The advisory database cannot be used: one line, with what to do."""


def folder() -> Path:
    return Path(settings.SECURITY_ADVISORIES_DIR)


@dataclass
class Vulnerable:
    package: str
    version: str
    id: str
    aliases: list[str]
    fixed_in: list[str]
    description: str

    def line(self) -> str:
        fix = f"fixed in {', '.join(self.fixed_in)}" if self.fixed_in else "no fix released"
        also = f" ({', '.join(sorted(self.aliases)[:3])})" if self.aliases else ""
        return f"{self.package} {self.version}: {self.id}{also}, {fix}: {self.description[:160]}"


@dataclass
class AuditResult:
    source: str  # "OSV (live)" or "cached OSV database of <date>"
    audited: str = ""  # the lock files, or "installed packages"
    packages: int = 0
    vulnerable: list[Vulnerable] = field(default_factory=list)
    database_age_days: int | None = None


# --- the cached database -------------------------------------------------------------


def _affects(record: dict, name: str, version: Version) -> bool:
    for affected in record.get("affected") or []:
        package = affected.get("package") or {}
        if package.get("ecosystem") != "PyPI" or canonicalize_name(package.get("name", "")) != name:
            continue
        if str(version) in (affected.get("versions") or []):
            return True
        for span in affected.get("ranges") or []:
            if span.get("type") != "ECOSYSTEM":
                continue
            hit = False
            events = []
            for event in span.get("events") or []:
                kind, value = next(iter(event.items()))
                try:
                    events.append((Version("0") if value == "0" else Version(value), kind))
                except InvalidVersion:
                    continue
            for at, kind in sorted(events, key=lambda e: e[0]):
                if kind == "introduced" and version >= at:
                    hit = True
                elif (kind == "fixed" and version >= at) or (
                    kind == "last_affected" and version > at
                ):
                    hit = False
            if hit:
                return True
    return False


class AdvisoryDatabase:
    """OSV records by canonical package name, loaded from one zip."""

    def __init__(self, records: dict[str, list[dict]], source: dict):
        self.records, self.source = records, source

    @classmethod
    def load(cls, path: Path | None = None) -> AdvisoryDatabase:
        path = path or folder() / ARCHIVE
        if not path.exists():
            raise AdvisoryError(
                "no cached advisory database: run `oxygis security advisories update` with "
                "network, or `oxygis security advisories import FILE`"
            )
        records: dict[str, list[dict]] = {}
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if not member.endswith(".json"):
                    continue
                record = json.loads(archive.read(member))
                for affected in record.get("affected") or []:
                    package = affected.get("package") or {}
                    if package.get("ecosystem") == "PyPI" and package.get("name"):
                        records.setdefault(canonicalize_name(package["name"]), []).append(record)
        source_file = path.parent / SOURCE
        source = json.loads(source_file.read_text()) if source_file.exists() else {}
        return cls(records, source)

    def matching(self, name: str, version: str) -> list[dict]:
        try:
            parsed = Version(version)
        except InvalidVersion:
            return []
        name = canonicalize_name(name)
        seen, found = set(), []
        for record in self.records.get(name, []):
            if record.get("withdrawn") or record["id"] in seen:
                continue
            if _affects(record, name, parsed):
                seen.add(record["id"])
                found.append(record)
        return found

    @property
    def as_of(self) -> dt.datetime | None:
        value = self.source.get("as_of") or self.source.get("fetched_at")
        if not value:
            return None
        moment = dt.datetime.fromisoformat(value)
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _canonical(record: dict) -> dict:
    """The record with PyPI names canonical ("Django" -> "django"), which is how pip-audit
    matches the fixed versions to the package it asked about."""
    record = dict(record)
    record["affected"] = [
        {**a, "package": {**a["package"], "name": canonicalize_name(a["package"]["name"])}}
        if (a.get("package") or {}).get("ecosystem") == "PyPI"
        else a
        for a in record.get("affected") or []
    ]
    return record


class CachedOsvAdapter(requests.adapters.BaseAdapter):
    """Answers pip-audit's OSV queries (POST /v1/query) from the cached database."""

    def __init__(self, database: AdvisoryDatabase):
        super().__init__()
        self.database = database

    def send(self, request, **kwargs):
        query = json.loads(request.body)
        vulns = [
            _canonical(record)
            for record in self.database.matching(query["package"]["name"], query["version"])
        ]
        response = requests.Response()
        response.status_code = 200
        response.url = request.url
        response.request = request
        response.headers["Content-Type"] = "application/json"
        response._content = json.dumps({"vulns": vulns} if vulns else {}).encode()
        return response

    def close(self):
        pass


def _validate_archive(path: Path) -> int:
    """The number of OSV records in ``path``; AdvisoryError if it is not an OSV export."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith(".json")]
            if not names:
                raise AdvisoryError(f"{path.name}: no OSV records in this zip")
            sample = json.loads(archive.read(names[0]))
            if "id" not in sample or "affected" not in sample:
                raise AdvisoryError(f"{path.name}: not OSV records (no id/affected)")
            return len(names)
    except zipfile.BadZipFile:
        raise AdvisoryError(f"{path.name}: not a zip file") from None


def _install(temporary: Path, source: dict) -> dict:
    """Replace the cached database atomically: a reader sees the old one or the new."""
    source = {**source, "records": _validate_archive(temporary)}
    source.setdefault("fetched_at", dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    os.chmod(temporary, 0o600)
    os.replace(temporary, folder() / ARCHIVE)
    meta = folder() / SOURCE
    meta.with_suffix(".tmp").write_text(json.dumps(source, indent=1))
    os.replace(meta.with_suffix(".tmp"), meta)
    return source


def _scratch() -> Path:
    folder().mkdir(parents=True, exist_ok=True, mode=0o700)
    handle, name = tempfile.mkstemp(dir=folder(), prefix=".incoming-", suffix=".zip")
    os.close(handle)
    return Path(name)


def update(url: str | None = None, timeout: float = 60, progress=None) -> dict:
    """Download OSV's PyPI export and make it the cached database."""
    url = url or settings.SECURITY_ADVISORIES_URL
    if not url.startswith("https://"):  # never file:// or plain http for what we trust
        raise AdvisoryError(f"the advisory database is fetched over https only, not {url!r}")
    temporary = _scratch()
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "oxygis-security-check"})  # noqa: S310 - https only, checked above
        try:
            with (
                urllib.request.urlopen(request, timeout=timeout) as answer,  # noqa: S310 # nosec B310 # https only, checked above
                open(temporary, "wb") as out,
            ):
                copied = 0
                while chunk := answer.read(1 << 20):
                    copied += len(chunk)
                    if copied > DOWNLOAD_LIMIT:
                        raise AdvisoryError(f"{url}: larger than {DOWNLOAD_LIMIT >> 20} MiB")
                    out.write(chunk)
                    if progress is not None:
                        progress("advisory database download")
        except (OSError, ValueError) as exc:
            raise AdvisoryError(f"cannot download {url}: {exc}") from None
        return _install(temporary, {"source": url})
    finally:
        temporary.unlink(missing_ok=True)


def import_file(path: Path, as_of: str | None = None) -> dict:
    """Make an OSV zip carried in by hand the cached database."""
    temporary = _scratch()
    try:
        try:
            temporary.write_bytes(Path(path).read_bytes())
        except OSError as exc:
            raise AdvisoryError(f"cannot read {path}: {exc.strerror}") from None
        source = {"source": f"imported from {Path(path).name}"}
        if as_of:
            source["as_of"] = dt.datetime.fromisoformat(as_of).isoformat()
        return _install(temporary, source)
    finally:
        temporary.unlink(missing_ok=True)


def status() -> dict | None:
    meta = folder() / SOURCE
    if not (folder() / ARCHIVE).exists() or not meta.exists():
        return None
    return json.loads(meta.read_text())


# --- the audit -----------------------------------------------------------------------


def default_locks() -> list[Path]:
    return [Path(p) for p in settings.SECURITY_LOCK_FILES if Path(p).exists()]


def _installed_source():
    """The distributions installed beside Oxygis, as pip-audit's dependency source: what
    runs, when no lock file came with it (a wheel install)."""
    from importlib.metadata import distributions

    from pip_audit._dependency_source.interface import DependencySource
    from pip_audit._service.interface import ResolvedDependency

    class InstalledSource(DependencySource):
        def collect(self):
            for dist in distributions():
                name = dist.metadata["Name"]
                try:
                    yield ResolvedDependency(name=name, version=Version(dist.version))
                except InvalidVersion:
                    continue

        def fix(self, fix_version):
            raise NotImplementedError("the self-check reports; it never changes packages")

    return InstalledSource()


def _collect(service, locks: list[Path], progress=None) -> AuditResult:
    from pip_audit._audit import Auditor
    from pip_audit._dependency_source import RequirementSource

    result = AuditResult(
        source="", audited=", ".join(p.name for p in locks) or "installed packages"
    )
    seen = set()
    sources = [
        RequirementSource([lock], require_hashes=True, disable_pip=True) for lock in locks
    ] or [_installed_source()]
    for source in sources:
        for dependency, vulns in Auditor(service).audit(source):
            key = (dependency.canonical_name, str(getattr(dependency, "version", "")))
            if key in seen:
                continue
            seen.add(key)
            result.packages += 1
            if progress is not None:
                progress("dependency audit")
            for vuln in vulns:
                result.vulnerable.append(
                    Vulnerable(
                        package=dependency.canonical_name,
                        version=key[1],
                        id=vuln.id,
                        aliases=sorted(vuln.aliases),
                        fixed_in=[str(v) for v in vuln.fix_versions],
                        description=vuln.description,
                    )
                )
    return result


def audit(
    locks: list[Path] | None = None, *, online: bool | None = None, progress=None
) -> AuditResult:
    """pip-audit on the lock files; live OSV first (unless ``online`` is False), the
    cached database when OSV cannot be reached. Without a lock file (a wheel install),
    the installed distributions. AdvisoryError when no database can answer."""
    from pip_audit._service import OsvService
    from pip_audit._service.interface import ConnectionError as AuditConnectionError
    from pip_audit._service.interface import ServiceError

    locks = locks if locks is not None else default_locks()
    cache = folder() / "http-cache"
    if online is None:
        online = settings.SECURITY_ADVISORIES_ONLINE
    if online:
        try:
            service = OsvService(cache_dir=cache, timeout=10)
            result = _collect(service, locks, progress)
            result.source = "OSV (live)"
            result.database_age_days = 0
            return result
        except (requests.RequestException, AuditConnectionError, ServiceError) as exc:
            log.info(
                "OSV unreachable (%s): auditing against the cached database", type(exc).__name__
            )
    database = AdvisoryDatabase.load()
    service = OsvService(cache_dir=cache, timeout=10, osv_url=OFFLINE_URL)
    service.session = requests.Session()
    service.session.mount(OFFLINE_URL.rsplit("/v1/", 1)[0], CachedOsvAdapter(database))
    result = _collect(service, locks, progress)
    as_of = database.as_of
    result.source = f"cached OSV database of {as_of:%Y-%m-%d}" if as_of else "cached OSV database"
    if as_of:
        result.database_age_days = (dt.datetime.now(dt.UTC) - as_of).days
    return result


def osv_zip(records: list[dict]) -> bytes:
    """An OSV export holding ``records`` (for imports built by hand, and tests)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for record in records:
            archive.writestr(f"{record['id']}.json", json.dumps(record))
    return buffer.getvalue()
