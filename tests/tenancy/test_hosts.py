"""C9: the Host header decides the site; anything unusual is refused."""

import pytest

from oxygis.tenancy.hosts import CONSOLE, TENANT, Site, classify_host


@pytest.mark.parametrize(
    ("host", "site"),
    [
        ("demo.localhost", Site(TENANT, "demo")),
        ("DEMO.LocalHost", Site(TENANT, "demo")),  # DNS is case-insensitive
        ("demo.localhost.", Site(TENANT, "demo")),  # fully-qualified form
        ("demo.localhost:8443", Site(TENANT, "demo")),
        ("console.localhost", Site(CONSOLE)),
        ("console.localhost:443", Site(CONSOLE)),
    ],
)
def test_served_hosts(host, site):
    """C9: the forms a browser may send for one of our hosts all name the same site."""
    assert classify_host(host) == site


@pytest.mark.parametrize(
    "host",
    [
        "",
        "localhost",
        "127.0.0.1",
        "[::1]:8443",
        "demo.example.com",
        "demo.localhost.evil.com",
        "evil.com#.demo.localhost",
        "a.demo.localhost",  # nested subdomains are not tenants
        "www.localhost",  # reserved
        "ab.localhost",  # too short to be a slug
        "-demo.localhost",
        "xn--demo.localhost",
        "demo.localhost:port",
        "demo.localhost:8443:1",
        "demo_x.localhost",
        "demo.localhost..",
        "de mo.localhost",
        "demo.localhost\r\nX: y",
        "d" * 400 + ".localhost",
    ],
)
def test_refused_hosts(host):
    """C9: foreign, malformed and reserved hosts map to no site at all."""
    assert classify_host(host) is None
