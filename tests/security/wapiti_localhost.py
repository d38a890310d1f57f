"""Run Debian's wapiti with ``*.localhost`` names resolved to loopback, as RFC 6761
(section 6.3) lets an application do: this machine's resolver does not, and the tenant
and console hosts must keep their names (Host header, SNI, certificate) to be served.

Also mends one line of Debian's wapiti 3.0.4 for Python 3.11: its ``-x`` patterns end
with an inline ``(?ms)`` flag group, which Python 3.11 refuses anywhere but first.

Run by /usr/bin/python3 (wapiti's own interpreter), not the project's virtualenv."""

import re
import socket
import sys
from importlib.metadata import entry_points

_getaddrinfo = socket.getaddrinfo


def _loopback_for_localhost(host, *args, **kwargs):
    if isinstance(host, str) and (host == "localhost" or host.endswith(".localhost")):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _loopback_for_localhost


def _wildcard_translate(pattern: str) -> re.Pattern:
    """wapiti's own translation ("*" matches anything), flags first."""
    return re.compile("(?ms)" + ".*".join(re.escape(part) for part in pattern.split("*")) + r"\Z")


if __name__ == "__main__":
    from wapitiCore.net import crawler

    crawler.wildcard_translate = _wildcard_translate
    (main,) = [e for e in entry_points(group="console_scripts") if e.name == "wapiti"]
    sys.argv[0] = "wapiti"
    sys.exit(main.load()())
