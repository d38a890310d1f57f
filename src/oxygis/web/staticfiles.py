"""Static files: collected once into ``STATIC_ROOT`` (under the var folder), under names
that carry a hash of their content, each with a gzip and a Brotli copy; WhiteNoise
serves the compressed copy the browser accepts and tells it to keep the file for a year
(a new version has a new name, so nothing stale is ever served).

``oxygis serve`` and the test set-up call :func:`ensure_collected` before any server
loads; it collects again only when the source files changed, under a lock, so that
servers starting side by side do not write the same folder at once.
"""

from __future__ import annotations

import fcntl
import hashlib
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles.finders import get_finders
from django.core.management import call_command

STAMP = ".sources"  # the fingerprint of the sources the folder was collected from


def source_fingerprint() -> str:
    """A hash of every source static file (name and content), as the finders see them."""
    digest = hashlib.sha256()
    found = {}
    for finder in get_finders():
        for path, storage in finder.list([]):
            found.setdefault(path, Path(storage.path(path)))
    for path in sorted(found):
        digest.update(path.encode() + b"\0" + found[path].read_bytes() + b"\0")
    return digest.hexdigest()


def ensure_collected() -> bool:
    """Collect the static files if they are missing or older than their sources; True
    if they were collected now."""
    root = Path(settings.STATIC_ROOT)
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / "static.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        fingerprint = source_fingerprint()
        stamp = root / STAMP
        manifest = root / "staticfiles.json"
        if manifest.exists() and stamp.exists() and stamp.read_text() == fingerprint:
            return False
        call_command("collectstatic", interactive=False, verbosity=0)
        stamp.write_text(fingerprint)
        return True
