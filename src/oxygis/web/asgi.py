"""The application as the embedded server (web/server.py) runs it.

Django's WSGI application behind Hypercorn's own WSGI adapter, which reads each request
whole in the event loop before anything runs, with two things in front, per process:

* A thread pool of our own (OXYGIS_WEB_THREADS), instead of the event loop's default
  handful: a request waiting for a password-hashing slot (accounts/hashers.py) waits in
  a thread, and a sign-in flood must not take every thread from unrelated pages.
* A fair share per client address: at most REQUESTS_AT_ONCE of one address's requests
  run at a time, the next ones wait in the event loop (no thread, no CPU), and past
  QUEUE_PER_ADDRESS they are refused. And once Django has answered an address 429 with
  Retry-After on a path, its further requests there are answered 429 here, until then,
  without running anything. Threat: a handful of clients sending requests as fast as
  they can (a sign-in flood, even one the limiter already refuses) taking the CPU from
  everyone else.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from hypercorn.app_wrappers import WSGIWrapper

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oxygis.settings")

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from oxygis.core.addresses import real_client

from .server import MAX_BODY

REQUESTS_AT_ONCE = 4  # per client address and process
QUEUE_PER_ADDRESS = 64
REMEMBERED_REFUSALS = 10_000
# A refused address waits this long for its 429 (a tarpit: a client that floods gets
# few answers, and few TLS handshakes cost us), for up to TARPIT_PER_ADDRESS of its
# connections at once; the ones beyond are refused at once.
TARPIT_SECONDS = 2.0
TARPIT_PER_ADDRESS = 64


class FairShare:
    """Requests in flight and waiting, per client address (event-loop only: no locks)."""

    def __init__(self, at_once: int, queue: int):
        self.at_once, self.queue = at_once, queue
        self._running: dict[str, int] = {}
        self._waiting: dict[str, deque] = {}

    async def enter(self, address: str) -> bool:
        if self._running.get(address, 0) < self.at_once:
            self._running[address] = self._running.get(address, 0) + 1
            return True
        waiting = self._waiting.setdefault(address, deque())
        if len(waiting) >= self.queue:
            return False
        turn = asyncio.get_running_loop().create_future()
        waiting.append(turn)
        try:
            await turn  # leave() hands its place over: the count stays as it is
        except asyncio.CancelledError:
            if turn in waiting:
                waiting.remove(turn)
            elif turn.done() and not turn.cancelled():
                self.leave(address)  # handed a place, but gone: pass it on
            raise
        return True

    def leave(self, address: str) -> None:
        waiting = self._waiting.get(address)
        while waiting:
            turn = waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self._waiting.pop(address, None)
        left = self._running.get(address, 1) - 1
        if left:
            self._running[address] = left
        else:
            self._running.pop(address, None)


def _security_headers() -> list[tuple[bytes, bytes]]:
    """What every response carries (tests/web/test_headers.py), for the answers given
    here without Django."""
    return [
        (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"cache-control", b"no-store"),
        (
            b"strict-transport-security",
            f"max-age={settings.SECURE_HSTS_SECONDS}; includeSubDomains".encode(),
        ),
    ]


class ThreadedWSGI:
    def __init__(self, wsgi_app, *, threads: int, max_body: int):
        self._wsgi = WSGIWrapper(wsgi_app, max_body)
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="web")
        self._share = FairShare(REQUESTS_AT_ONCE, QUEUE_PER_ADDRESS)
        self._refusing: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._headers = _security_headers()
        self._tarpit: dict[str, int] = {}

    async def _refuse(self, send, retry_after: int, text: str, address: str) -> None:
        held = self._tarpit.get(address, 0)
        if held < TARPIT_PER_ADDRESS:
            self._tarpit[address] = held + 1
            try:
                await asyncio.sleep(TARPIT_SECONDS)
            finally:
                left = self._tarpit[address] - 1
                if left:
                    self._tarpit[address] = left
                else:
                    del self._tarpit[address]
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"retry-after", str(retry_after).encode()),
            *self._headers,
        ]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": text.encode(), "more_body": False})

    async def _refuse_now(self, send, status: int, text: bytes) -> None:
        headers = [(b"content-type", b"text/plain; charset=utf-8"), *self._headers]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": text, "more_body": False})

    def _client(self, scope) -> str:
        peer = (scope.get("client") or ("unknown", 0))[0]
        forwarded = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"), None
        )
        return real_client(peer, forwarded)

    async def __call__(self, scope, receive, send):
        loop = asyncio.get_running_loop()

        def call_soon(func, *args):
            return asyncio.run_coroutine_threadsafe(func(*args), loop).result()

        def run(sending):
            return self._wsgi(
                scope, receive, sending, partial(loop.run_in_executor, self._executor), call_soon
            )

        if scope["type"] != "http":
            return await run(send)
        address = self._client(scope)
        key = (address, scope["path"])
        until = self._refusing.get(key)
        now = time.monotonic()
        if until is not None:
            if until > now:
                wait = int(until - now) + 1
                text = f"Too many attempts: retry in {wait} s.\n"
                return await self._refuse(send, wait, text, address)
            del self._refusing[key]
        # The body first, whole, in the event loop: a slow body holds no share.
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body.extend(message.get("body", b""))
            if len(body) > MAX_BODY:
                return await self._refuse_now(send, 413, b"The request is too large.\n")
            if not message.get("more_body"):
                break

        async def replay():
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        receive = replay
        if not await self._share.enter(address):
            text = "Too many requests at once from your address.\n"
            return await self._refuse(send, 1, text, address)

        async def watching(message):
            # Django said 429 with Retry-After: answer that path ourselves until then.
            if message["type"] == "http.response.start" and message["status"] == 429:
                retry = dict(message.get("headers", [])).get(b"retry-after", b"")
                if retry.isdigit():
                    self._refusing[key] = time.monotonic() + int(retry)
                    self._refusing.move_to_end(key)
                    while len(self._refusing) > REMEMBERED_REFUSALS:
                        self._refusing.popitem(last=False)
            await send(message)

        try:
            await run(watching)
        finally:
            self._share.leave(address)


application = ThreadedWSGI(get_wsgi_application(), threads=settings.WEB_THREADS, max_body=MAX_BODY)
