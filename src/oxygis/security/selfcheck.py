"""``oxygis security check``: everything we can verify about a deployment from inside it.

Five checks, each a list of findings (one line each): Django's deployment checks, the
data folder, the dependency lock against known vulnerabilities, and for a live address
its security headers (graded by the MDN HTTP Observatory's rules) and its TLS. A check
that cannot run is a finding too: an audit that silently did nothing is worse than none.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from django.conf import settings
from django.core import checks as django_checks

from . import advisories, observatory
from .datadir import check_data_folder
from .probe import ProbeError, Target, fetch
from .tlscheck import check_tls

CHECKS = ("deploy", "data", "dependencies", "headers", "tls")


@dataclass
class Finding:
    check: str
    message: str

    def line(self) -> str:
        return f"{self.check}: {self.message}"


@dataclass
class Report:
    url: str | None = None
    findings: list[Finding] = field(default_factory=list)
    headers: dict | None = None
    tls: dict | None = None
    dependencies: dict | None = None
    ran: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, check: str, message: str) -> None:
        self.findings.append(Finding(check, message))

    def as_json(self) -> dict:
        return {
            "ok": self.ok,
            "url": self.url,
            "checks": self.ran,
            "findings": [asdict(f) for f in self.findings],
            "headers": self.headers,
            "tls": self.tls,
            "dependencies": self.dependencies,
        }


def check_deploy(report: Report) -> None:
    for message in django_checks.run_checks(include_deployment_checks=True):
        if message.level >= django_checks.WARNING and not message.is_silenced():
            first = str(message.msg).split(". ")[0].rstrip(".")
            report.add("deploy", f"{message.id}: {first}")


def check_data(report: Report) -> None:
    for problem in check_data_folder():
        report.add("data", problem)


def _quiet(_text: str) -> None:
    pass


def check_dependencies(report: Report, locks=None, progress=_quiet) -> None:
    try:
        result = advisories.audit(locks, progress=progress)
    except advisories.AdvisoryError as exc:
        report.add("dependencies", str(exc))
        return
    report.dependencies = {
        "audited": result.audited,
        "source": result.source,
        "packages": result.packages,
        "database_age_days": result.database_age_days,
        "vulnerable": [asdict(v) for v in result.vulnerable],
    }
    limit = settings.SECURITY_ADVISORIES_MAX_AGE_DAYS
    if limit and result.database_age_days is not None and result.database_age_days > limit:
        report.add(
            "dependencies",
            f"the advisory database is {result.database_age_days} days old (over {limit}): "
            "`oxygis security advisories update`",
        )
    for vulnerable in result.vulnerable:
        report.add("dependencies", vulnerable.line())


def check_live(
    report: Report, target: Target, *, cafile=None, only=CHECKS, progress=_quiet
) -> None:
    cafile = cafile or default_cafile()
    if "headers" in only:
        report.ran.append("headers")
        try:
            fetched = fetch(target, cafile=cafile)
        except ProbeError as exc:
            report.add("headers", str(exc))
        else:
            verdict = observatory.grade(fetched)
            report.headers = {
                "status": fetched.status,
                "score": verdict.score,
                "grade": verdict.grade,
                "tests": [
                    {
                        "test": t.test,
                        "result": t.result,
                        "pass": t.passed,
                        "modifier": t.modifier,
                        "description": t.description,
                    }
                    for t in verdict.tests
                ],
            }
            for failed in verdict.failed:
                report.add(
                    "headers",
                    f"{failed.test}: {failed.result} ({failed.modifier:+d}): {failed.description}",
                )
    if "tls" in only:
        report.ran.append("tls")
        if not target.url.startswith("https://"):
            report.add("tls", f"{target.url} is not served over https")
            return
        try:
            tls = check_tls(target, cafile=cafile, progress=progress)
        except ProbeError as exc:
            report.add("tls", str(exc))
            return
        report.tls = {
            "protocols": tls.protocols,
            "ciphers": tls.ciphers,
            "weak_ciphers": tls.weak_ciphers,
            "certificate_error": tls.certificate_error,
            "not_after": tls.not_after.isoformat() if tls.not_after else None,
        }
        for problem in tls.problems:
            report.add("tls", problem)


def default_cafile() -> str | None:
    if settings.SECURITY_SCAN_CAFILE:
        return settings.SECURITY_SCAN_CAFILE
    local_ca = settings.VAR_DIR / "tls" / "ca.pem"  # the embedded mode's own CA
    return str(local_ca) if local_ca.exists() else None


def run_check(
    url: str | None = None,
    *,
    connect: str | None = None,
    only=CHECKS,
    locks=None,
    cafile: str | None = None,
    progress=_quiet,
) -> Report:
    """The whole self-check; ``only`` narrows it to some checks; ``progress(text)`` is
    called as it goes."""
    unknown = set(only) - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown check(s): {', '.join(sorted(unknown))}")
    report = Report(url=url)
    for name, run in (
        ("deploy", check_deploy),
        ("data", check_data),
        ("dependencies", lambda r: check_dependencies(r, locks, progress)),
    ):
        if name in only:
            report.ran.append(name)
            run(report)
    if url:
        check_live(report, Target.parse(url, connect), cafile=cafile, only=only, progress=progress)
    return report
