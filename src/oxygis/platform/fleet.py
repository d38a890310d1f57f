"""Jobs over every tenant, run in parallel processes (``tenant migrate --all --jobs N``).

Kept free of model imports at module level: the processes are spawned, and import this
module before Django is set up in them.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed


def _start_worker() -> None:
    import django

    django.setup()


def _migrate_one(slug: str):
    """In a worker process: migrate one tenant; (slug, migrated?, error or None)."""
    from . import provisioning

    try:
        return slug, provisioning.migrate_tenant(provisioning.get_tenant(slug)), None
    except Exception as exc:
        return slug, False, f"{type(exc).__name__}: {exc}"


def migrate_each(tenants, jobs: int):
    """(slug, migrated?, error) for each tenant, as each finishes; ``jobs`` processes."""
    from . import provisioning

    if jobs == 1:
        for tenant in tenants:
            try:
                yield tenant.slug, provisioning.migrate_tenant(tenant), None
            except Exception as exc:
                yield tenant.slug, False, f"{type(exc).__name__}: {exc}"
        return
    from django.db import connections

    connections.close_all()  # the processes open their own
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker) as pool:
        futures = [pool.submit(_migrate_one, t.slug) for t in tenants]
        for future in as_completed(futures):
            yield future.result()
