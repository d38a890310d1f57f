"""Security headers graded by the MDN HTTP Observatory's published rules (S11).

Every response starts at 100; each test adds its modifier (a penalty, or a bonus that
counts only when the score without bonuses is at least 90, as the Observatory does);
the sum maps to a letter grade. Test names and modifiers are the Observatory's, so an
operator can compare our verdict with developer.mozilla.org/observatory line for line.
We grade the response we fetched ourselves: the public Observatory cannot reach a
staging host, an intranet deployment or a host under attack.

Written here rather than imported: MDN's scanner is a Node service and the old Python
``httpobs`` is abandoned (docs/architecture.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

GRADES = [
    (100, "A+"),
    (90, "A"),
    (85, "A-"),
    (80, "B+"),
    (70, "B"),
    (65, "B-"),
    (60, "C+"),
    (50, "C"),
    (45, "C-"),
    (40, "D+"),
    (30, "D"),
    (25, "D-"),
    (0, "F"),
]

# result name -> (modifier, description), as the Observatory publishes them.
MODIFIERS: dict[str, tuple[int, str]] = {
    # Content Security Policy
    "csp-implemented-with-no-unsafe-default-src-none": (
        10,
        "CSP implemented with default-src 'none' and no 'unsafe-inline' or 'unsafe-eval'",
    ),
    "csp-implemented-with-no-unsafe": (
        5,
        "CSP implemented without 'unsafe-inline' or 'unsafe-eval'",
    ),
    "csp-implemented-with-unsafe-inline-in-style-src-only": (
        0,
        "CSP implemented with 'unsafe-inline' inside style-src only",
    ),
    "csp-implemented-with-insecure-scheme-in-passive-content-only": (
        -10,
        "CSP allows passive content (images, media) over http",
    ),
    "csp-implemented-with-unsafe-eval": (-10, "CSP implemented, but allows 'unsafe-eval'"),
    "csp-implemented-with-insecure-scheme": (-20, "CSP allows resources to be loaded from http"),
    "csp-implemented-with-unsafe-inline": (-20, "CSP allows 'unsafe-inline' in script-src"),
    "csp-header-invalid": (-25, "CSP header cannot be parsed"),
    "csp-not-implemented": (-25, "CSP header not implemented"),
    # Cookies
    "cookies-secure-with-httponly-sessions-and-samesite": (
        5,
        "All cookies Secure, session cookies HttpOnly, SameSite set",
    ),
    "cookies-not-found": (0, "No cookies detected"),
    "cookies-secure-with-httponly-sessions": (0, "All cookies Secure, session cookies HttpOnly"),
    "cookies-without-secure-flag-but-protected-by-hsts": (
        -5,
        "Cookies without the Secure flag, but HSTS prevents transmission over http",
    ),
    "cookies-session-without-secure-flag-but-protected-by-hsts": (
        -10,
        "Session cookie without the Secure flag, but HSTS prevents transmission over http",
    ),
    "cookies-samesite-flag-invalid": (-20, "Cookies use an invalid SameSite value"),
    "cookies-anticsrf-without-samesite-flag": (-20, "Anti-CSRF cookie without SameSite"),
    "cookies-without-secure-flag": (-20, "Cookies set without the Secure flag"),
    "cookies-session-without-httponly-flag": (-30, "Session cookie without the HttpOnly flag"),
    "cookies-session-without-secure-flag": (-40, "Session cookie without the Secure flag"),
    # Cross-origin resource sharing
    "cross-origin-resource-sharing-not-implemented": (0, "CORS not implemented"),
    "cross-origin-resource-sharing-implemented-with-public-access": (
        0,
        "Public content visible via CORS",
    ),
    "cross-origin-resource-sharing-implemented-with-restricted-access": (
        0,
        "CORS restricted to specific origins",
    ),
    "cross-origin-resource-sharing-implemented-with-universal-access": (
        -50,
        "Content visible to any origin via CORS with credentials",
    ),
    # Redirection
    "redirection-to-https": (0, "Initial redirection is to https on the same host"),
    "redirection-not-needed-no-http": (0, "Not available over http: no redirection needed"),
    "redirection-off-host-from-http": (-5, "Initial redirection from http is to another host"),
    "redirection-not-to-https-on-initial-redirection": (
        -10,
        "Redirects to https eventually, but the first redirection is to http",
    ),
    "redirection-missing": (-20, "Does not redirect to https"),
    "redirection-not-to-https": (-20, "Redirects, but not to an https URL"),
    # Referrer policy
    "referrer-policy-private": (5, "Referrer-Policy keeps the referrer private"),
    "referrer-policy-no-referrer-when-downgrade": (0, "Referrer-Policy no-referrer-when-downgrade"),
    "referrer-policy-not-implemented": (0, "Referrer-Policy header not implemented"),
    "referrer-policy-unsafe": (-5, "Referrer-Policy leaks the full address (unsafe-url)"),
    "referrer-policy-header-invalid": (-5, "Referrer-Policy header cannot be recognised"),
    # Strict transport security
    "hsts-preloaded": (5, "Preloaded via the HSTS preloading process"),
    "hsts-implemented-max-age-at-least-six-months": (0, "HSTS max-age at least six months"),
    "hsts-implemented-max-age-less-than-six-months": (-10, "HSTS max-age less than six months"),
    "hsts-not-implemented": (-20, "HSTS header not implemented"),
    "hsts-header-invalid": (-20, "HSTS header cannot be recognised"),
    "hsts-not-implemented-no-https": (-20, "HSTS cannot be set on a site not served over https"),
    # Subresource integrity
    "sri-implemented-and-all-scripts-loaded-securely": (5, "SRI on all scripts"),
    "sri-implemented-and-external-scripts-loaded-securely": (
        5,
        "SRI implemented and external scripts loaded securely",
    ),
    "sri-not-implemented-but-all-scripts-loaded-from-secure-origin": (
        0,
        "SRI not needed: all scripts from the same origin",
    ),
    "sri-not-implemented-but-no-scripts-loaded": (0, "SRI not needed: no script tags"),
    "sri-not-implemented-response-not-html": (0, "SRI only needed for html"),
    "sri-not-implemented-but-external-scripts-loaded-securely": (
        -5,
        "SRI not implemented, external scripts loaded over https",
    ),
    "sri-implemented-but-external-scripts-not-loaded-securely": (
        -20,
        "SRI implemented, but external scripts loaded over http",
    ),
    "sri-not-implemented-and-external-scripts-not-loaded-securely": (
        -50,
        "SRI not implemented and external scripts loaded over http",
    ),
    # X-Content-Type-Options
    "x-content-type-options-nosniff": (0, "X-Content-Type-Options set to nosniff"),
    "x-content-type-options-not-implemented": (-5, "X-Content-Type-Options not implemented"),
    "x-content-type-options-header-invalid": (-5, "X-Content-Type-Options cannot be recognised"),
    # X-Frame-Options
    "x-frame-options-implemented-via-csp": (5, "Framing restricted by CSP frame-ancestors"),
    "x-frame-options-sameorigin-or-deny": (0, "X-Frame-Options SAMEORIGIN or DENY"),
    "x-frame-options-allow-from-origin": (0, "X-Frame-Options ALLOW-FROM"),
    "x-frame-options-not-implemented": (-20, "X-Frame-Options not implemented"),
    "x-frame-options-header-invalid": (-20, "X-Frame-Options cannot be recognised"),
    # Cross-Origin-Resource-Policy
    "corp-implemented-with-same-origin": (0, "CORP same-origin"),
    "corp-implemented-with-same-site": (0, "CORP same-site"),
    "corp-implemented-with-cross-origin": (0, "CORP cross-origin"),
    "corp-not-implemented": (0, "CORP not implemented"),
    "corp-header-invalid": (-5, "CORP header cannot be recognised"),
}

SIX_MONTHS = 15768000
SESSION_COOKIE_HINTS = ("session", "sess", "sid", "login", "auth")
CSRF_COOKIE_HINTS = ("csrf", "xsrf")
PRIVATE_REFERRER = {
    "no-referrer",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
}
VALID_REFERRER = PRIVATE_REFERRER | {
    "no-referrer-when-downgrade",
    "origin",
    "origin-when-cross-origin",
    "unsafe-url",
}


@dataclass
class Fetched:
    """What the grader looks at: one HTTPS response, and what plain http did."""

    url: str
    status: int
    headers: list[tuple[str, str]]  # as received, repeated headers kept
    body: str = ""
    # The http:// probe: the first Location it answered (None: no redirect), or
    # ``http_refused`` when nothing listens on http.
    http_location: str | None = None
    http_refused: bool = True

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return ", ".join(values) if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


@dataclass
class RuleResult:
    test: str
    result: str
    passed: bool

    @property
    def modifier(self) -> int:
        return MODIFIERS[self.result][0]

    @property
    def description(self) -> str:
        return MODIFIERS[self.result][1]


@dataclass
class Grade:
    score: int
    grade: str
    tests: list[RuleResult] = field(default_factory=list)

    @property
    def failed(self) -> list[RuleResult]:
        return [t for t in self.tests if not t.passed]


def parse_csp(value: str) -> dict[str, list[str]]:
    """Directives of a policy, lower-cased; the first of a repeated directive wins (as in
    browsers). Raises ValueError on what a browser would not parse."""
    policy: dict[str, list[str]] = {}
    for part in value.split(";"):
        tokens = part.strip().split()
        if not tokens:
            continue
        name = tokens[0].lower()
        if not re.fullmatch(r"[a-z0-9-]+", name):
            raise ValueError(f"bad directive {name!r}")
        policy.setdefault(name, [t for t in tokens[1:]])
    if not policy:
        raise ValueError("empty policy")
    return policy


def _sources(policy, directive: str) -> list[str]:
    for name in (directive, "default-src"):
        if name in policy:
            return [s.lower() for s in policy[name]]
    return []  # nothing restricts it: everything allowed


def rule_csp(r: Fetched) -> RuleResult:
    values = r.all("Content-Security-Policy")
    if not values:
        return RuleResult("content-security-policy", "csp-not-implemented", False)
    try:
        policy = parse_csp(values[0])
    except ValueError:
        return RuleResult("content-security-policy", "csp-header-invalid", False)
    script = _sources(policy, "script-src")
    style = _sources(policy, "style-src")
    has_default = "default-src" in policy
    # 'unsafe-inline' is ignored by browsers where a nonce, a hash or 'strict-dynamic' is.
    trusted = any(s.startswith(("'nonce-", "'sha")) or s == "'strict-dynamic'" for s in script)
    if "'unsafe-inline'" in script and not trusted:
        return RuleResult("content-security-policy", "csp-implemented-with-unsafe-inline", False)
    if not has_default and "script-src" not in policy:
        return RuleResult("content-security-policy", "csp-implemented-with-unsafe-inline", False)
    active = script + _sources(policy, "object-src")
    if any(s in ("http:", "*") or s.startswith("http://") for s in active):
        return RuleResult("content-security-policy", "csp-implemented-with-insecure-scheme", False)
    if "'unsafe-eval'" in script:
        return RuleResult("content-security-policy", "csp-implemented-with-unsafe-eval", False)
    passive = _sources(policy, "img-src") + _sources(policy, "media-src")
    if any(s == "http:" or s.startswith("http://") for s in passive):
        return RuleResult(
            "content-security-policy",
            "csp-implemented-with-insecure-scheme-in-passive-content-only",
            False,
        )
    if "'unsafe-inline'" in style:
        return RuleResult(
            "content-security-policy", "csp-implemented-with-unsafe-inline-in-style-src-only", True
        )
    if policy.get("default-src") == ["'none'"]:
        return RuleResult(
            "content-security-policy", "csp-implemented-with-no-unsafe-default-src-none", True
        )
    return RuleResult("content-security-policy", "csp-implemented-with-no-unsafe", True)


def _hsts_max_age(r: Fetched) -> int | None:
    value = r.header("Strict-Transport-Security")
    if value is None:
        return None
    match = re.search(r"(?:^|;)\s*max-age\s*=\s*\"?(\d+)\"?", value, re.IGNORECASE)
    return int(match[1]) if match else -1


def rule_hsts(r: Fetched) -> RuleResult:
    # "hsts-preloaded" (+5) needs the browsers' preload list, which we do not ship: a
    # preloaded host is graded 5 points below the public Observatory, never above it.
    if not r.url.startswith("https://"):
        return RuleResult("strict-transport-security", "hsts-not-implemented-no-https", False)
    age = _hsts_max_age(r)
    if age is None:
        return RuleResult("strict-transport-security", "hsts-not-implemented", False)
    if age < 0:
        return RuleResult("strict-transport-security", "hsts-header-invalid", False)
    if age < SIX_MONTHS:
        return RuleResult(
            "strict-transport-security", "hsts-implemented-max-age-less-than-six-months", False
        )
    return RuleResult(
        "strict-transport-security", "hsts-implemented-max-age-at-least-six-months", True
    )


def rule_cookies(r: Fetched) -> RuleResult:
    raw = r.all("Set-Cookie")
    if not raw:
        return RuleResult("cookies", "cookies-not-found", True)
    hsts = (_hsts_max_age(r) or 0) >= SIX_MONTHS
    worst = "cookies-secure-with-httponly-sessions-and-samesite"
    order = [
        "cookies-secure-with-httponly-sessions-and-samesite",
        "cookies-secure-with-httponly-sessions",
        "cookies-without-secure-flag-but-protected-by-hsts",
        "cookies-session-without-secure-flag-but-protected-by-hsts",
        "cookies-samesite-flag-invalid",
        "cookies-anticsrf-without-samesite-flag",
        "cookies-without-secure-flag",
        "cookies-session-without-httponly-flag",
        "cookies-session-without-secure-flag",
    ]

    def worse(result):
        nonlocal worst
        if order.index(result) > order.index(worst):
            worst = result

    for header in raw:
        jar = SimpleCookie()
        try:
            jar.load(header)
        except Exception:
            worse("cookies-without-secure-flag")
            continue
        for name, morsel in jar.items():
            lowered = name.lower()
            session = any(h in lowered for h in SESSION_COOKIE_HINTS)
            samesite = (morsel["samesite"] or "").lower()
            if samesite and samesite not in ("strict", "lax", "none"):
                worse("cookies-samesite-flag-invalid")
            if not morsel["secure"]:
                if session:
                    worse(
                        "cookies-session-without-secure-flag-but-protected-by-hsts"
                        if hsts
                        else "cookies-session-without-secure-flag"
                    )
                else:
                    worse(
                        "cookies-without-secure-flag-but-protected-by-hsts"
                        if hsts
                        else "cookies-without-secure-flag"
                    )
            if session and not morsel["httponly"]:
                worse("cookies-session-without-httponly-flag")
            if any(h in lowered for h in CSRF_COOKIE_HINTS) and not samesite:
                worse("cookies-anticsrf-without-samesite-flag")
            if not samesite:
                worse("cookies-secure-with-httponly-sessions")
    return RuleResult("cookies", worst, MODIFIERS[worst][0] >= 0)


def rule_cors(r: Fetched) -> RuleResult:
    origin = r.header("Access-Control-Allow-Origin")
    if origin is None:
        return RuleResult(
            "cross-origin-resource-sharing", "cross-origin-resource-sharing-not-implemented", True
        )
    credentials = (r.header("Access-Control-Allow-Credentials") or "").lower() == "true"
    if origin.strip() == "*":
        return RuleResult(
            "cross-origin-resource-sharing",
            "cross-origin-resource-sharing-implemented-with-public-access",
            True,
        )
    if credentials and origin.strip() in ("null",):
        return RuleResult(
            "cross-origin-resource-sharing",
            "cross-origin-resource-sharing-implemented-with-universal-access",
            False,
        )
    return RuleResult(
        "cross-origin-resource-sharing",
        "cross-origin-resource-sharing-implemented-with-restricted-access",
        True,
    )


def rule_redirection(r: Fetched) -> RuleResult:
    if r.http_refused:
        return RuleResult("redirection", "redirection-not-needed-no-http", True)
    if not r.http_location:
        return RuleResult("redirection", "redirection-missing", False)
    target = urlsplit(r.http_location)
    if target.scheme != "https":
        return RuleResult("redirection", "redirection-not-to-https-on-initial-redirection", False)
    if target.hostname != urlsplit(r.url).hostname:
        return RuleResult("redirection", "redirection-off-host-from-http", False)
    return RuleResult("redirection", "redirection-to-https", True)


def rule_referrer(r: Fetched) -> RuleResult:
    value = r.header("Referrer-Policy")
    if value is None:
        return RuleResult("referrer-policy", "referrer-policy-not-implemented", True)
    # The last value a browser understands is the one it applies.
    known = [v.strip().lower() for v in value.split(",") if v.strip().lower() in VALID_REFERRER]
    if not known:
        return RuleResult("referrer-policy", "referrer-policy-header-invalid", False)
    if known[-1] in PRIVATE_REFERRER:
        return RuleResult("referrer-policy", "referrer-policy-private", True)
    if known[-1] == "no-referrer-when-downgrade":
        return RuleResult("referrer-policy", "referrer-policy-no-referrer-when-downgrade", True)
    return RuleResult("referrer-policy", "referrer-policy-unsafe", False)


class _Scripts(HTMLParser):
    def __init__(self):
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.scripts.append(dict(attrs))


def rule_sri(r: Fetched) -> RuleResult:
    content_type = (r.header("Content-Type") or "").lower()
    if "html" not in content_type:
        return RuleResult("subresource-integrity", "sri-not-implemented-response-not-html", True)
    parser = _Scripts()
    parser.feed(r.body)
    host = urlsplit(r.url).hostname
    external = []
    for script in parser.scripts:
        src = script.get("src")
        if src and urlsplit(src).hostname not in (None, host):
            external.append(script)
    if not parser.scripts:
        return RuleResult(
            "subresource-integrity", "sri-not-implemented-but-no-scripts-loaded", True
        )
    if not external:
        return RuleResult(
            "subresource-integrity",
            "sri-not-implemented-but-all-scripts-loaded-from-secure-origin",
            True,
        )
    insecure = any((s.get("src") or "").startswith("http://") for s in external)
    with_sri = all(s.get("integrity") for s in external)
    if with_sri:
        result = (
            "sri-implemented-but-external-scripts-not-loaded-securely"
            if insecure
            else "sri-implemented-and-external-scripts-loaded-securely"
        )
    else:
        result = (
            "sri-not-implemented-and-external-scripts-not-loaded-securely"
            if insecure
            else "sri-not-implemented-but-external-scripts-loaded-securely"
        )
    return RuleResult("subresource-integrity", result, MODIFIERS[result][0] >= 0)


def rule_nosniff(r: Fetched) -> RuleResult:
    value = r.header("X-Content-Type-Options")
    if value is None:
        return RuleResult("x-content-type-options", "x-content-type-options-not-implemented", False)
    if value.strip().lower() != "nosniff":
        return RuleResult("x-content-type-options", "x-content-type-options-header-invalid", False)
    return RuleResult("x-content-type-options", "x-content-type-options-nosniff", True)


def rule_framing(r: Fetched) -> RuleResult:
    csp = r.header("Content-Security-Policy")
    if csp:
        try:
            if "frame-ancestors" in parse_csp(r.all("Content-Security-Policy")[0]):
                return RuleResult("x-frame-options", "x-frame-options-implemented-via-csp", True)
        except ValueError:
            pass
    value = r.header("X-Frame-Options")
    if value is None:
        return RuleResult("x-frame-options", "x-frame-options-not-implemented", False)
    value = value.strip().lower()
    if value in ("deny", "sameorigin"):
        return RuleResult("x-frame-options", "x-frame-options-sameorigin-or-deny", True)
    if value.startswith("allow-from "):
        return RuleResult("x-frame-options", "x-frame-options-allow-from-origin", True)
    return RuleResult("x-frame-options", "x-frame-options-header-invalid", False)


def rule_corp(r: Fetched) -> RuleResult:
    value = r.header("Cross-Origin-Resource-Policy")
    if value is None:
        return RuleResult("cross-origin-resource-policy", "corp-not-implemented", True)
    value = value.strip().lower()
    if value in ("same-origin", "same-site", "cross-origin"):
        return RuleResult("cross-origin-resource-policy", f"corp-implemented-with-{value}", True)
    return RuleResult("cross-origin-resource-policy", "corp-header-invalid", False)


TESTS = [
    rule_csp,
    rule_cookies,
    rule_cors,
    rule_redirection,
    rule_referrer,
    rule_hsts,
    rule_sri,
    rule_nosniff,
    rule_framing,
    rule_corp,
]


def letter(score: int) -> str:
    return next(grade for floor, grade in GRADES if score >= floor)


def grade(response: Fetched) -> Grade:
    """The Observatory's verdict on one response: score, letter, and every test."""
    tests = [test(response) for test in TESTS]
    penalties = sum(t.modifier for t in tests if t.modifier < 0)
    bonuses = sum(t.modifier for t in tests if t.modifier > 0)
    score = 100 + penalties
    if score >= 90:  # bonuses only for a site already at A
        score += bonuses
    score = max(score, 0)
    return Grade(score=score, grade=letter(score), tests=tests)
