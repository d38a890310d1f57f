"""The data folder's permissions and secrets (S11).

Everything under ``VAR_DIR`` is the service's alone: databases, keys, the secret key,
the local CA's private key, mail spool. A file others can read there is a leak waiting
for a second account on the machine; one others can write is a way in.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from django.conf import settings

WALK_LIMIT = 20000  # files looked at; a data folder larger than that is sampled
SECRET_NAMES = ("secret_key", "secret", "identity", "password")
SECRET_SUFFIXES = (".key", ".age", ".identity", ".pw")


def _is_secret(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(SECRET_SUFFIXES) or any(word in name for word in SECRET_NAMES)


def check_data_folder(root: Path | None = None) -> list[str]:
    """One line per problem; none when the folder is the service user's alone."""
    root = Path(root or settings.VAR_DIR)
    if not root.exists():
        return [f"data folder {root} does not exist"]
    problems: list[str] = []
    me = os.geteuid()
    top = root.stat()
    if top.st_uid != me:
        problems.append(f"data folder {root} belongs to uid {top.st_uid}, not this service's")
    if top.st_mode & 0o077:
        problems.append(
            f"data folder {root} is open to others (mode {stat.filemode(top.st_mode)}; "
            f"chmod 700 {root})"
        )
    seen = 0
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            seen += 1
            if seen > WALK_LIMIT:
                return problems
            path = Path(folder) / name
            try:
                info = path.lstat()
            except OSError:
                continue  # gone while we looked (a rotated log, a finished dump)
            if stat.S_ISLNK(info.st_mode):
                continue
            relative = path.relative_to(root)
            if info.st_uid != me:
                problems.append(f"{relative} belongs to uid {info.st_uid}, not this service's")
            if info.st_mode & 0o002:
                problems.append(f"{relative} is writable by anyone ({stat.filemode(info.st_mode)})")
            elif stat.S_ISREG(info.st_mode) and _is_secret(path) and info.st_mode & 0o077:
                problems.append(
                    f"secret {relative} is readable by others "
                    f"({stat.filemode(info.st_mode)}; chmod 600)"
                )
    return problems
