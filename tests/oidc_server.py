"""A real OpenID provider (panva's oidc-provider on Node, tests/oidc_provider.mjs) on a
loopback port, for the OpenID Connect sign-in tests (S7), and a browser-less user agent
that signs in at it the way a person's browser would (follows redirects, keeps its
cookies, fills the provider's login form).

Accounts (password ``<id>-IdP-2026``): ``olivia`` (groups: sales, MFA: amr pwd+otp),
``oscar`` (groups: admins, password only), ``nina`` (no group). The signing key is the
test's own, so tests can also sign tokens the provider never issued (forgeries).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path
from urllib.parse import urljoin

import requests
from joserfc.jwk import RSAKey

from tests.served import free_port, wait_listening

ROOT = Path(__file__).resolve().parent.parent
MODULES = ROOT / ".tools" / "oidc-provider" / "node_modules"
ACCOUNTS = {
    "olivia": {
        "claims": {
            "email": "olivia@idp.test",
            "email_verified": True,
            "given_name": "Olivia",
            "family_name": "Roux",
            "preferred_username": "olivia",
            "groups": ["sales"],
        },
        "amr": ["pwd", "otp"],
        "acr": "urn:test:mfa",
    },
    "oscar": {
        "claims": {
            "email": "oscar@idp.test",
            "email_verified": True,
            "given_name": "Oscar",
            "family_name": "Blanc",
            "preferred_username": "oscar",
            "groups": ["admins"],
        },
        "amr": ["pwd"],
    },
    "nina": {
        "claims": {"email": "nina@idp.test", "preferred_username": "nina", "groups": []},
        "amr": ["pwd"],
    },
}


def password_of(account: str) -> str:
    return f"{account}-IdP-2026"


def provider_available() -> bool:
    return shutil.which("node") is not None and (MODULES / "oidc-provider").is_dir()


class OpenIDServer:
    """oidc-provider in a subprocess on 127.0.0.1:<port>; ``clients`` as the library
    takes them (client_id, client_secret, redirect_uris, post_logout_redirect_uris)."""

    def __init__(self, folder: Path, clients: list[dict]):
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-signing-key", "use": "sig"})
        config = {
            "issuer": self.issuer,
            "port": self.port,
            "clients": [
                {
                    "grant_types": ["authorization_code"],
                    "response_types": ["code"],
                    "token_endpoint_auth_method": "client_secret_basic",
                    **c,
                }
                for c in clients
            ],
            "jwks": {"keys": [{**self.key.as_dict(private=True), "alg": "RS256"}]},
            "accounts": {k: {**v, "password": password_of(k)} for k, v in ACCOUNTS.items()},
        }
        self.log = open(folder / "oidc-provider.log", "w+")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            ["node", str(ROOT / "tests" / "oidc_provider.mjs")],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "OIDC_TEST_CONFIG": json.dumps(config),
                "OIDC_PROVIDER_MODULES": str(MODULES),
            },
        )
        wait_listening(self.process, self.port, "oidc-provider", self.output, seconds=30)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.log.close()


class ProviderAgent:
    """The person's browser at the provider: cookies kept, redirects followed up to the
    address that leaves the provider (our callback), which it returns, unvisited."""

    def __init__(self, issuer: str):
        self.issuer = issuer
        self.http = requests.Session()

    def follow(self, url: str, *, method: str = "GET", data=None) -> requests.Response:
        response = self.http.request(method, url, data=data, allow_redirects=False, timeout=10)
        while response.is_redirect:
            target = urljoin(response.url, response.headers["Location"])
            if not target.startswith(self.issuer):
                response.leaving_to = target
                return response
            response = self.http.get(target, allow_redirects=False, timeout=10)
        response.leaving_to = None
        return response

    def submit_form(self, response: requests.Response, **extra) -> requests.Response:
        """Post the page's first form with its hidden fields, as the page's own script
        (or a person's click) would."""
        form = re.search(r"<form[^>]*action=\"([^\"]+)\"[^>]*>(.*?)</form>", response.text, re.S)
        assert form, f"no form at the provider:\n{response.text[:500]}"
        fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(2)))
        return self.follow(
            urljoin(response.url, unescape(form.group(1))), method="POST", data={**fields, **extra}
        )

    def sign_in(self, authorization_url: str, account: str, password: str | None = None) -> str:
        """From our authorization URL to the callback URL the provider sends back."""
        response = self.follow(authorization_url)
        if response.leaving_to:  # the provider's session already knew the person
            return response.leaving_to
        response = self.submit_form(
            response, login=account, password=password or password_of(account)
        )
        if not response.leaving_to and "session/end/confirm" in response.text:
            # Another person than the provider's session's: it ends that session first.
            response = self.submit_form(response)
        assert response.leaving_to, f"the provider did not send us back:\n{response.text[:500]}"
        return response.leaving_to

    def sign_out(self, end_session_url: str) -> str:
        """RP-initiated logout: the provider's page posts its own form; where it ends."""
        response = self.follow(end_session_url)
        if response.leaving_to:
            return response.leaving_to
        return self.submit_form(response, logout="yes").leaving_to
