"""The backup actions the CLI, the worker, the views and the tests call, gathered from
the modules of each step: ``targets`` (what is backed up, lookups), ``pipeline`` (a
backup's one pass), ``verify`` (read-backs, state, re-sync) and ``retention`` (pruning).
"""

from __future__ import annotations

from .manifest import DUMP_OBJECT, MANIFEST_OBJECT
from .pipeline import ZSTD_LEVEL, fail_interrupted, run_backup
from .retention import prune, retained
from .targets import (
    Progress,
    Target,
    all_targets,
    catalog_target,
    find_backup,
    last_good,
    latest_by_target,
    tenant_target,
)
from .verify import resync, settle, verify_backup, verify_copy

__all__ = [
    "DUMP_OBJECT",
    "MANIFEST_OBJECT",
    "ZSTD_LEVEL",
    "Progress",
    "Target",
    "all_targets",
    "catalog_target",
    "fail_interrupted",
    "find_backup",
    "last_good",
    "latest_by_target",
    "prune",
    "resync",
    "retained",
    "run_backup",
    "settle",
    "tenant_target",
    "verify_backup",
    "verify_copy",
]
