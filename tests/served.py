"""A real ``oxygis serve`` (Hypercorn, HTTPS) in a subprocess, for end-to-end tests, and
what drives it from outside: the CLI in a subprocess, API writers. Free of Django
imports: bench scripts use it too."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.cookies import SimpleCookie


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(process, port: int, name: str, output, seconds: float = 60) -> None:
    """Until ``process`` accepts connections on 127.0.0.1:``port``; AssertionError with
    its ``output()`` when it exits or does not listen in time (then it is killed)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{name} exited early:\n{output()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"{name} did not listen within {seconds:.0f} s:\n{output()}")


class Served:
    def __init__(self, var_dir, port, workers: int = 2, *, worker: bool = False, env=None):
        self.var_dir, self.port = var_dir, port
        self.log = open(var_dir / "serve.log", "w+")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "oxygis.cli",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(workers),
                # Most tests share the run's catalog: one backup worker there would back
                # up every test's tenants behind their backs. Those that test it opt in.
                *([] if worker else ["--no-worker"]),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OXYGIS_VAR_DIR": str(var_dir), **(env or {})},
        )
        wait_listening(self.process, port, "serve", self.output)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            return self.process.wait(timeout=30)
        finally:
            self.log.close()

    def tls_context(self, **versions) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.var_dir / "tls" / "ca.pem"))
        for key, value in versions.items():
            setattr(context, key, value)
        return context

    def request(
        self, host, method, path, *, body=None, headers=None, context=None, source="127.0.0.1"
    ):
        """An HTTPS request to ``host`` (SNI and certificate check on that name), from the
        loopback address ``source`` (127.0.0.0/8 all leads here: distinct clients)."""
        raw = socket.create_connection(
            ("127.0.0.1", self.port), timeout=10, source_address=(source, 0)
        )
        sock = (context or self.tls_context()).wrap_socket(raw, server_hostname=host)
        tls_version = sock.version()
        try:
            conn = http.client.HTTPConnection(host, self.port)
            conn.sock = sock
            conn.request(
                method, path, body=body, headers={"Host": f"{host}:{self.port}", **(headers or {})}
            )
            response = conn.getresponse()
            response.text = response.read().decode()
            response.tls_version = tls_version
            return response
        finally:
            sock.close()


def cookies_of(response) -> dict[str, str]:
    jar = SimpleCookie()
    for value in response.headers.get_all("Set-Cookie") or []:
        jar.load(value)
    return {name: morsel.value for name, morsel in jar.items()}


def sign_in_over_https(served, host: str, username: str, password: str, source="127.0.0.1"):
    """One sign-in attempt on a fresh connection, as a browser makes it (CSRF included)."""
    import re
    from urllib.parse import urlencode

    login = served.request(host, "GET", "/accounts/login/", source=source)
    if login.status != 200:
        return login
    csrf = cookies_of(login)["__Host-oxygis_csrf"]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)[1]
    return served.request(
        host,
        "POST",
        "/accounts/login/",
        body=urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token}),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"__Host-oxygis_csrf={csrf}",
            "Origin": f"https://{host}:{served.port}",
        },
        source=source,
    )


def oxygis(*args, env=None, input=None):
    """``oxygis ARGS`` in a subprocess, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "oxygis.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        input=input,
        timeout=120,
    )


class Writers:
    """Threads creating orders through the API until told to stop."""

    def __init__(self, served, host, token, customer, count=3):
        self.served, self.host, self.token, self.customer = served, host, token, customer
        self.acknowledged: list[tuple[str, str]] = []  # (order number, line text)
        self.acknowledged_at: list[float] = []  # time.monotonic() of each
        self.unavailable = 0
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.write, args=(n,)) for n in range(count)]

    def write(self, n: int) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            text = f"writer {n} order {i}"
            body = {
                "customer_id": self.customer,
                "lines": [{"description": text, "quantity": "1", "unit_price": "1.00"}],
            }
            try:
                response = self.served.request(
                    self.host,
                    "POST",
                    "/api/v1/orders",
                    body=json.dumps(body),
                    headers={
                        "Authorization": f"Bearer {self.token}",
                        "Content-Type": "application/json",
                    },
                )
            except OSError as exc:  # the server must not drop connections either
                self.errors.append(f"{text}: {exc}")
                continue
            if response.status == 201:
                self.acknowledged.append((json.loads(response.text)["number"], text))
                self.acknowledged_at.append(time.monotonic())
            elif response.status == 503 and response.getheader("Retry-After"):
                self.unavailable += 1
                time.sleep(0.1)
            else:
                self.errors.append(f"{text}: {response.status} {response.text[:200]}")

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


# Run by `oxygis shell -c` on a platform: a tenant, a customer, and a read-write API key
# for Writers; prints them as one JSON line.
WRITER_SETUP = """
import json, secrets
from django.contrib.auth import get_user_model
from oxygis.access.actors import system
from oxygis.accounts.apikeys import issue_key
from oxygis.sales.models import Contact
from oxygis.tenancy.databases import tenant_context
from oxygis.platform.provisioning import provision_tenant
made = provision_tenant("{prefix}" + secrets.token_hex(3), name="Writers", plan="paid")
with tenant_context(made.tenant), system(reason="writers' set-up"):
    customer = Contact.objects.create(name="Steady Customer")
    _, token = issue_key(get_user_model().objects.get(username="admin"), name="load",
                         scope="read-write", days=1)
print(json.dumps({{"slug": made.tenant.slug, "db": made.tenant.db_name,
                  "customer": customer.pk, "token": token}}))
"""
