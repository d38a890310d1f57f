"""Backup sites: object stores named by URL (``file://``, ``az://``, ``s3://``), via obstore.

Credentials never go in the URL: obstore reads them from the cloud's usual environment
variables (``AZURE_STORAGE_ACCOUNT_KEY``, ``AWS_SECRET_ACCESS_KEY``, ...) or the
platform's managed identity. The URL's query may set only the non-secret options below.
"""

from __future__ import annotations

import os
import shutil
import socket
from urllib.parse import parse_qsl, urlsplit

import obstore
from django.conf import settings
from obstore.store import AzureStore, LocalStore, S3Store

from .errors import BackupError

# Writes are multipart uploads of 5 MiB parts (S3's minimum), two in flight: what a backup holds in
# memory per site is bounded whatever the database size.
PART_SIZE = 5 * 1024 * 1024
PARTS_IN_FLIGHT = 2
READ_BUFFER = 4 * 1024 * 1024

_OPTIONS = {
    "az": {"account_name", "endpoint", "use_emulator", "allow_http"},
    "s3": {"region", "endpoint", "allow_http", "virtual_hosted_style_request"},
    "file": set(),
}
_CLIENT_OPTIONS = {"allow_http"}
_BOOLEAN = {"use_emulator", "allow_http", "virtual_hosted_style_request"}


class SiteError(BackupError):
    pass


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class SiteReader:
    """A site's object as a stream of bytes; a failure mid-way is a SiteError, so that the
    caller can turn to another site."""

    def __init__(self, raw, failure):
        self.raw, self.failure = raw, failure

    def read(self, size: int = -1) -> bytes:
        try:
            return bytes(self.raw.read(size))
        except Exception as exc:
            raise self.failure(exc) from None


class Site:
    """One backup site. ``name`` is its URL (never holding a secret)."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _OPTIONS:
            raise SiteError(f"backup site {url!r}: use a file://, az:// or s3:// URL")
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = set(options) - _OPTIONS[scheme]
        if unknown:
            raise SiteError(
                f"backup site {url!r}: unknown option(s) {', '.join(sorted(unknown))}"
                " (credentials come from the environment, never the URL)"
            )
        if parts.username or parts.password:
            raise SiteError(f"backup site {parts.hostname}: credentials may not be in the URL")
        self.name = url
        self.scheme = scheme
        config = {k: v for k, v in options.items() if k not in _CLIENT_OPTIONS}
        for key in _BOOLEAN & set(config):
            config[key] = config[key].lower() in ("1", "true", "yes")
        client = {
            k: options[k].lower() in ("1", "true", "yes") for k in _CLIENT_OPTIONS & set(options)
        }
        try:
            if scheme == "file":
                if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
                    raise SiteError(f"backup site {url!r}: a file:// URL needs an absolute path")
                os.makedirs(parts.path, mode=0o700, exist_ok=True)
                self.root = parts.path
                self.store = LocalStore(parts.path, mkdir=True)
            elif scheme == "az":
                self.store = AzureStore(
                    parts.netloc,
                    prefix=parts.path.strip("/") or None,
                    client_options=client or None,
                    **config,
                )
            else:
                self.store = S3Store(
                    parts.netloc,
                    prefix=parts.path.strip("/") or None,
                    client_options=client or None,
                    **config,
                )
        except SiteError:
            raise
        except Exception as exc:
            raise SiteError(f"backup site {url}: {one_line(exc)}") from None

    def __repr__(self) -> str:
        return f"<Site {self.name}>"

    def _fail(self, what: str, exc: BaseException) -> SiteError:
        return SiteError(f"site {self.name}: {what}: {one_line(exc)}")

    def writer(self, path: str):
        try:
            return obstore.open_writer(
                self.store, path, buffer_size=PART_SIZE, max_concurrency=PARTS_IN_FLIGHT
            )
        except Exception as exc:
            raise self._fail(f"cannot write {path}", exc) from None

    def reader(self, path: str) -> SiteReader:
        try:
            raw = obstore.open_reader(self.store, path, buffer_size=READ_BUFFER)
        except FileNotFoundError:
            raise SiteError(f"site {self.name}: {path} is missing") from None
        except Exception as exc:
            raise self._fail(f"cannot read {path}", exc) from None
        return SiteReader(raw, lambda exc: self._fail(f"cannot read {path}", exc))

    def put(self, path: str, data: bytes) -> None:
        try:
            obstore.put(self.store, path, data)
        except Exception as exc:
            raise self._fail(f"cannot write {path}", exc) from None

    def get(self, path: str) -> bytes:
        try:
            return bytes(obstore.get(self.store, path).bytes())
        except FileNotFoundError:
            raise SiteError(f"site {self.name}: {path} is missing") from None
        except Exception as exc:
            raise self._fail(f"cannot read {path}", exc) from None

    def delete_prefix(self, prefix: str) -> None:
        try:
            paths = [m["path"] for batch in obstore.list(self.store, prefix=prefix) for m in batch]
            if paths:
                obstore.delete(self.store, paths)
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise self._fail(f"cannot delete {prefix}", exc) from None
        if self.scheme == "file":
            # An upload cut short leaves staging files ("<name>#<n>") that listing does
            # not show. (Azure drops uncommitted blocks itself; on S3, set a lifecycle
            # rule that aborts incomplete multipart uploads.)
            shutil.rmtree(os.path.join(self.root, prefix), ignore_errors=True)

    def paths(self) -> set[str]:
        """Every object the site holds (one listing: the monitor compares it with the
        catalog each pass)."""
        try:
            return {m["path"] for batch in obstore.list(self.store) for m in batch}
        except Exception as exc:
            raise self._fail("cannot list", exc) from None

    def free_bytes(self) -> int | None:
        """Free space where a file site writes (None for cloud sites: no such limit)."""
        if self.scheme != "file":
            return None
        return shutil.disk_usage(self.root).free

    def probe(self) -> None:
        """Write, read back and delete a small object: raises SiteError if any step fails."""
        path = f".probe/{socket.gethostname()}-{os.getpid()}"
        payload = os.urandom(32)
        self.put(path, payload)
        if self.get(path) != payload:
            raise SiteError(f"site {self.name}: a probe object read back different bytes")
        try:
            obstore.delete(self.store, path)
        except Exception as exc:
            raise self._fail("cannot delete a probe object", exc) from None


def configured_sites(urls: list[str] | None = None) -> list[Site]:
    return [Site(url) for url in (urls if urls is not None else settings.BACKUP_SITES)]
