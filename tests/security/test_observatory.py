"""S11: the MDN HTTP Observatory's rules, applied by `oxygis security check`, on good and
bad responses (each rule's modifier is the published one)."""

import pytest

from oxygis.security.observatory import Fetched, grade, letter, rule_csp

GOOD_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
GOOD = [
    ("Content-Security-Policy", GOOD_CSP),
    ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Content-Type", "text/html; charset=utf-8"),
    (
        "Set-Cookie",
        "__Host-oxygis_session=abc; HttpOnly; Path=/; SameSite=Lax; Secure",
    ),
]


def fetched(headers, body="<html><script src='/static/app.js'></script></html>", **kw):
    return Fetched(url="https://alpha.localhost/", status=200, headers=headers, body=body, **kw)


def without(name):
    return [(k, v) for k, v in GOOD if k != name]


def results(verdict):
    return {t.test: t.result for t in verdict.tests}


def test_a_hardened_response_gets_a_plus_with_its_bonuses():
    """S11: CSP default-src 'none' (+10), frame-ancestors (+5), private referrer (+5),
    SameSite cookies (+5) on top of 100: 125, A+."""
    verdict = grade(fetched(GOOD))
    assert (verdict.score, verdict.grade) == (125, "A+")
    assert not verdict.failed


@pytest.mark.parametrize(
    ("missing", "result", "penalty"),
    [
        ("Content-Security-Policy", "csp-not-implemented", -25),
        ("Strict-Transport-Security", "hsts-not-implemented", -20),
        ("X-Content-Type-Options", "x-content-type-options-not-implemented", -5),
    ],
)
def test_each_missing_header_costs_its_published_penalty_and_the_bonuses(missing, result, penalty):
    """S11: below 90 no bonus counts; at or above it, they do."""
    verdict = grade(fetched(without(missing)))
    assert result in results(verdict).values()
    base = 100 + penalty
    bonuses = 0 if base < 90 else 25
    if missing == "Content-Security-Policy":
        bonuses = 0  # the CSP bonuses went with it (and frame-ancestors: XFO DENY is 0)
    assert verdict.score == base + bonuses


def test_framing_needs_xfo_or_frame_ancestors():
    """S11: neither is -20; frame-ancestors alone is enough (+5)."""
    no_frame = [(k, v) for k, v in without("X-Frame-Options") if k != "Content-Security-Policy"]
    no_frame.append(("Content-Security-Policy", "default-src 'self'"))
    assert results(grade(fetched(no_frame)))["x-frame-options"] == "x-frame-options-not-implemented"
    only_csp = without("X-Frame-Options")
    assert results(grade(fetched(only_csp)))["x-frame-options"] == (
        "x-frame-options-implemented-via-csp"
    )


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (
            "default-src 'self'; script-src 'self' 'unsafe-inline'",
            "csp-implemented-with-unsafe-inline",
        ),
        ("default-src 'self'; script-src 'self' 'unsafe-eval'", "csp-implemented-with-unsafe-eval"),
        ("default-src 'self'; script-src 'self' http:", "csp-implemented-with-insecure-scheme"),
        ("img-src 'self'", "csp-implemented-with-unsafe-inline"),  # no script restriction
        (
            "default-src 'self'; style-src 'self' 'unsafe-inline'",
            "csp-implemented-with-unsafe-inline-in-style-src-only",
        ),
        (
            "default-src 'self'; script-src 'nonce-abc' 'strict-dynamic' 'unsafe-inline'",
            "csp-implemented-with-no-unsafe",
        ),
        ("default-src 'none'", "csp-implemented-with-no-unsafe-default-src-none"),
        (
            "default-src 'self'; img-src http://cdn.example",
            "csp-implemented-with-insecure-scheme-in-passive-content-only",
        ),
        ("default-src 'self'; {bad}", "csp-header-invalid"),
    ],
)
def test_csp_rules_on_good_and_bad_policies(policy, expected):
    """S11: as the Observatory reads a policy (a nonce or 'strict-dynamic' makes browsers
    ignore 'unsafe-inline')."""
    assert rule_csp(fetched([("Content-Security-Policy", policy)])).result == expected


@pytest.mark.parametrize(
    ("cookie", "expected", "modifier"),
    [
        (
            "sessionid=1; Secure; HttpOnly; SameSite=Strict",
            "cookies-secure-with-httponly-sessions-and-samesite",
            5,
        ),
        ("sessionid=1; Secure; HttpOnly", "cookies-secure-with-httponly-sessions", 0),
        ("sessionid=1; Secure; SameSite=Lax", "cookies-session-without-httponly-flag", -30),
        (
            "sessionid=1; HttpOnly; SameSite=Lax",
            "cookies-session-without-secure-flag-but-protected-by-hsts",
            -10,
        ),
        ("csrftoken=1; Secure", "cookies-anticsrf-without-samesite-flag", -20),
        ("theme=dark; SameSite=Lax", "cookies-without-secure-flag-but-protected-by-hsts", -5),
    ],
)
def test_cookie_rules(cookie, expected, modifier):
    """S11: the worst cookie decides; HSTS softens a missing Secure flag."""
    headers = [*without("Set-Cookie"), ("Set-Cookie", cookie)]
    (result,) = [t for t in grade(fetched(headers)).tests if t.test == "cookies"]
    assert (result.result, result.modifier) == (expected, modifier)


def test_referrer_cors_redirection_and_sri():
    """S11: a leaking referrer policy, CORS open to any origin with credentials, plain
    http without a redirect, an external script without integrity: each one counted."""
    headers = [
        *[(k, v) for k, v in GOOD if k != "Referrer-Policy"],
        ("Referrer-Policy", "unsafe-url"),
        ("Access-Control-Allow-Origin", "null"),
        ("Access-Control-Allow-Credentials", "true"),
    ]
    body = "<script src='https://cdn.example/x.js'></script>"
    verdict = grade(fetched(headers, body=body, http_refused=False, http_location=None))
    found = results(verdict)
    assert found["referrer-policy"] == "referrer-policy-unsafe"
    assert found["cross-origin-resource-sharing"] == (
        "cross-origin-resource-sharing-implemented-with-universal-access"
    )
    assert found["redirection"] == "redirection-missing"
    assert found["subresource-integrity"] == (
        "sri-not-implemented-but-external-scripts-loaded-securely"
    )
    assert verdict.score == 100 - 5 - 50 - 20 - 5
    redirect = fetched(GOOD, http_refused=False, http_location="https://alpha.localhost/")
    assert results(grade(redirect))["redirection"] == "redirection-to-https"
    off_host = fetched(GOOD, http_refused=False, http_location="https://elsewhere.example/")
    assert results(grade(off_host))["redirection"] == "redirection-off-host-from-http"


def test_grade_boundaries_are_the_published_ones():
    assert [letter(s) for s in (100, 99, 90, 85, 80, 70, 65, 60, 50, 45, 40, 30, 25, 24, 0)] == [
        "A+", "A", "A", "A-", "B+", "B", "B-", "C+", "C", "C-", "D+", "D", "D-", "F", "F"
    ]  # fmt: skip
