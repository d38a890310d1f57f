"""A worker pass costs the same few catalog queries with 5 tenants or 50 (issue 13)."""

from __future__ import annotations

import random
from datetime import timedelta

from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from oxygis.backups import monitor
from oxygis.backups.credentials import prune_events
from oxygis.backups.models import Backup
from oxygis.backups.service import Target
from oxygis.backups.worker import due_targets, prune_slice
from oxygis.tenancy.models import Tenant


def _targets(count: int, backed_up_at, stem: str | None = None) -> list[Target]:
    """Databases with one good backup each (rows only: what the schedule decides on)."""
    stem = stem or f"scale-{random.getrandbits(32):08x}"
    created = timezone.now() - timedelta(days=3)
    targets = [
        Target(f"{stem}-{i}", f"{stem}-{i}", Tenant(slug=f"{stem}-{i}", created_at=created), 14, 52)
        for i in range(count)
    ]
    Backup.objects.bulk_create(
        Backup(
            target=t.key,
            label=t.label,
            engine="sqlite",
            database="x",
            state=Backup.GOOD,
            started_at=backed_up_at,
        )
        for t in targets
    )
    return targets


def _queries(func, *args) -> tuple[int, object]:
    """How many statements ``func`` sends to the catalog (transaction control aside)."""
    with CaptureQueriesContext(connections["default"]) as captured:
        result = func(*args)
    control = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
    return sum(not q["sql"].startswith(control) for q in captured), result


def test_what_is_due_is_found_in_grouped_queries():
    """The schedule of every database comes out of a fixed number of catalog queries;
    a worker that asked per tenant would outlast its interval at 10,000 tenants."""
    now = timezone.now()
    few = _targets(5, now)
    many = _targets(50, now)
    stale = _targets(3, now - timedelta(days=2))
    few_queries, few_due = _queries(due_targets, few, now)
    many_queries, many_due = _queries(due_targets, many + stale, now)
    assert few_due == [] and many_due == stale
    assert few_queries == many_queries == 2


def test_backup_windows_are_checked_in_grouped_queries():
    """C8: the no-good-backup alerts of every database cost a fixed number of queries
    when nothing changes (only a changed alert costs its own)."""
    now = timezone.now()
    few = _targets(5, now)
    many = _targets(50, now)
    few_queries, found = _queries(monitor.check_windows, now, few)
    many_queries, found_many = _queries(monitor.check_windows, now, many)
    assert not any(s.overdue for s in found + found_many)
    assert few_queries == many_queries <= 4
    late = _targets(2, now - timedelta(days=3))
    monitor.check_windows(now, late)  # the two alerts are raised once...
    again, _ = _queries(monitor.check_windows, now, many + late)
    assert again == many_queries + 1  # ...and only seen again after (one grouped update)


def test_pruning_is_spread_over_the_day():
    """Each database is pruned about once a day, a slice per pass, so a pass prunes a
    few databases whatever their number (plus those it just backed up).

    The slices come from a hash of each key, so their sizes vary: fixed keys keep the
    test reproducible (random keys put 4 of 600 in one of the 2,880 slices about one run
    in six), and the bound is what a hash spread gives, far below the 600 a pass would
    prune if it pruned every database."""
    targets = _targets(600, timezone.now(), stem="prune-spread")
    interval = 30
    start = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    seen: dict[str, int] = {}
    largest = 0
    for n in range(86400 // interval):
        chosen = prune_slice(targets, start + timedelta(seconds=n * interval), interval)
        largest = max(largest, len(chosen))
        for t in chosen:
            seen[t.key] = seen.get(t.key, 0) + 1
    assert set(seen) == {t.key for t in targets}
    assert set(seen.values()) == {1}
    assert largest <= 5


def test_credential_events_are_pruned_in_one_statement():
    """C4: pruning credential events is one statement, whatever the number of tenants."""
    count, _ = _queries(prune_events)
    assert count == 1
