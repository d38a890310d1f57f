"""Benchmark: an unrelated page while anonymous clients abuse the server.

`oxygis serve` (2 processes, the defaults) on a fresh data folder. A signed-in user
loads their home page over and over (2 client threads, a new TLS connection each); its
p50/p95 and the requests that time out are measured in these situations:

  quiet       nothing else
  (a) slow    100 idle TCP connections and 20 TLS clients stuck in their headers,
              re-opened whenever the server closes them
  (b) flood   20 clients posting sign-ins with random names from one address
  (b') spread the same flood, each attempt from another loopback address: the
              per-address limiter does not stop it, the per-process cap on password
              hashing has to
  (c) both    (a) and (b') together

Targets (issue 12): p95 under 3x the quiet figure, no timeout. Not a test: record the
figures, with the machine, in bench/README.md.

    python bench/abuse.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.client import HTTPConnection
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

HOST = "demo.localhost"
TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Client:
    def __init__(self, port: int, ca: Path):
        self.port, self.context = port, ssl.create_default_context(cafile=str(ca))

    def request(self, method, path, *, body=None, headers=None, source="127.0.0.1"):
        # Each client its own loopback address (127.0.0.0/8 is all ours): the server
        # sees distinct peers, as it would distinct hosts.
        raw = socket.create_connection(
            ("127.0.0.1", self.port), timeout=TIMEOUT, source_address=(source, 0)
        )
        sock = self.context.wrap_socket(raw, server_hostname=HOST)
        try:
            conn = HTTPConnection(HOST, self.port, timeout=TIMEOUT)
            conn.sock = sock
            host = f"{HOST}:{self.port}"
            conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
            response = conn.getresponse()
            response.text = response.read().decode(errors="replace")
            return response
        finally:
            sock.close()


def cookies(response) -> dict:
    jar = SimpleCookie()
    for value in response.headers.get_all("Set-Cookie") or []:
        jar.load(value)
    return {k: m.value for k, m in jar.items()}


def sign_in(client: Client, username: str, password: str, source: str):
    """The form, then the post, as a browser does it, from ``source``."""
    page = client.request("GET", "/accounts/login/", source=source)
    if page.status != 200:
        return page
    csrf = cookies(page)["__Host-oxygis_csrf"]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": f"__Host-oxygis_csrf={csrf}",
        "Origin": f"https://{HOST}:{client.port}",
    }
    body = urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token})
    return client.request("POST", "/accounts/login/", body=body, headers=headers, source=source)


class Load:
    """Threads doing their work until stopped: ``count`` of each ``(count, work)``."""

    def __init__(self, *kinds):
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._loop, args=(work,))
            for count, work in kinds
            for _ in range(count)
        ]

    def _loop(self, work):
        while not self.stop.is_set():
            try:
                work(self.stop)
            except Exception:  # an abusive client does not give up
                time.sleep(0.05)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=TIMEOUT + 5)


def slow_clients(client: Client, idle: int, slow: int) -> Load:
    """Hold ``idle`` silent TCP connections and ``slow`` TLS clients stuck in their
    headers, opening new ones as the server closes them."""

    def hold_idle(stop):
        sock = socket.create_connection(("127.0.0.1", client.port), timeout=TIMEOUT)
        try:
            while not stop.is_set() and sock.recv(1):
                pass
        except OSError:
            pass
        finally:
            sock.close()

    def hold_slow(stop):
        raw = socket.create_connection(("127.0.0.1", client.port), timeout=TIMEOUT)
        sock = client.context.wrap_socket(raw, server_hostname=HOST)
        try:
            sock.sendall(b"GET /accounts/login/ HTTP/1.1\r\nHost: demo.localhost\r\n")
            while not stop.is_set():
                sock.sendall(b"X-a: b\r\n")  # a header line now and then, never the end
                time.sleep(2)
        except OSError:
            pass
        finally:
            sock.close()

    return Load((idle, hold_idle), (slow, hold_slow))


def flood(client: Client, count: int, *, spread: bool) -> Load:
    def attempt(stop):
        source = (
            f"127.{random.randrange(1, 255)}.{random.randrange(256)}.{random.randrange(1, 255)}"
            if spread
            else FLOODER_ADDRESS
        )
        response = sign_in(client, f"nobody-{random.getrandbits(32):x}", "Wrong-pass-1!", source)
        with load.lock:
            load.outcomes[response.status] = load.outcomes.get(response.status, 0) + 1

    load = Load((count, attempt))
    load.lock, load.outcomes = threading.Lock(), {}
    return load


# The user whose page is measured comes from an address of their own; the one-address
# flood from another.
USER_ADDRESS, FLOODER_ADDRESS = "127.0.0.10", "127.0.0.66"


def measure(client: Client, session: str, seconds: float) -> dict:
    times, timeouts, statuses = [], 0, {}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def user():
        nonlocal timeouts
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                response = client.request(
                    "GET", "/", headers={"Cookie": session}, source=USER_ADDRESS
                )
            except TimeoutError:
                with lock:
                    timeouts += 1
                continue
            except OSError:
                continue
            with lock:
                statuses[response.status] = statuses.get(response.status, 0) + 1
                if response.status == 200:
                    times.append(time.monotonic() - started)

    threads = [threading.Thread(target=user) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "n": len(times),
        "p50": statistics.median(times) if times else float("nan"),
        "p95": statistics.quantiles(times, n=20)[18] if len(times) > 20 else float("nan"),
        "timeouts": timeouts,
        "statuses": statuses,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()

    var_dir = Path(tempfile.mkdtemp(prefix="oxygis-bench-abuse-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OXYGIS_")}
    env |= {"OXYGIS_VAR_DIR": str(var_dir)}
    port = free_port()
    log = open(var_dir / "serve.log", "w+")  # noqa: SIM115 - closed at the end
    server = subprocess.Popen(
        [sys.executable, "-m", "oxygis.cli", "serve", "--port", str(port), "--no-worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(120):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        time.sleep(1)
        log.seek(0)
        password = re.search(r"password: (\S+)", log.read())[1]
        client = Client(port, var_dir / "tls" / "ca.pem")
        signed = sign_in(client, "admin", password, USER_ADDRESS)
        if "__Host-oxygis_session" not in cookies(signed):
            raise SystemExit(f"could not sign in: {signed.status} {signed.text[:300]}")
        session = f"__Host-oxygis_session={cookies(signed)['__Host-oxygis_session']}"
        results = {"quiet": measure(client, session, args.seconds)}
        with slow_clients(client, 100, 20):
            time.sleep(2)
            results["(a) slow"] = measure(client, session, args.seconds)
        with flood(client, 20, spread=False) as attack:
            time.sleep(2)
            results["(b) flood"] = measure(client, session, args.seconds)
        results["(b) flood"]["attack"] = attack.outcomes
        with flood(client, 20, spread=True) as attack:
            time.sleep(2)
            results["(b') spread"] = measure(client, session, args.seconds)
        results["(b') spread"]["attack"] = attack.outcomes
        with slow_clients(client, 100, 20), flood(client, 20, spread=True) as attack:
            time.sleep(2)
            results["(c) both"] = measure(client, session, args.seconds)
        results["(c) both"]["attack"] = attack.outcomes
        quiet = results["quiet"]["p95"]
        print(
            f"{'situation':12s} {'requests':>8s} {'p50 ms':>8s} {'p95 ms':>8s} "
            f"{'p95/quiet':>9s} {'timeouts':>8s}  statuses"
        )
        for name, r in results.items():
            print(
                f"{name:12s} {r['n']:8d} {r['p50'] * 1000:8.1f} {r['p95'] * 1000:8.1f} "
                f"{r['p95'] / quiet:9.2f} {r['timeouts']:8d}  {r['statuses']}"
                + (f"  flood answers: {r['attack']}" if "attack" in r else "")
            )
    finally:
        server.send_signal(2)
        server.wait(timeout=30)
        log.close()


if __name__ == "__main__":
    main()
