"""``oxygis backup run|list|verify|restore|status``: thin over backups.service/restore."""

from __future__ import annotations

import sys

from django.core.management.base import CommandError
from django.db.models import Q
from django.utils import timezone

from oxygis.tenancy.engines import engine_for
from oxygis.tenancy.hosts import site_url
from oxygis.tenancy.tenants import get_tenant

from ... import monitor, pitr, restore, service, swaps
from ...alerts import open_alerts
from ...cli import ActionCommand
from ...errors import BackupError
from ...models import Backup, BackupCopy, Restore, WalArchive, WorkerHeartbeat


def _table(write, rows) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        write("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


class Command(ActionCommand):
    help = "Back up, list, verify and restore databases; show backup health."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        run = sub.add_parser("run", help="back up now (to every configured site)")
        which = run.add_mutually_exclusive_group(required=True)
        which.add_argument("--tenant", metavar="SLUG")
        which.add_argument("--all", action="store_true", help="the catalog and every tenant")
        which.add_argument("--catalog", action="store_true", help="the platform catalog")
        for name, text in (("list", "list backups"), ("verify", "re-read and check every copy")):
            cmd = sub.add_parser(name, help=text)
            which = cmd.add_mutually_exclusive_group(required=True)
            which.add_argument("--tenant", metavar="SLUG")
            which.add_argument("--catalog", action="store_true")
            if name == "verify":
                cmd.add_argument("--backup", metavar="ID", help="one backup (default: all kept)")
        rst = sub.add_parser("restore", help="restore a tenant's backup")
        rst.add_argument("--tenant", metavar="SLUG", required=True)
        point = rst.add_mutually_exclusive_group()
        point.add_argument("--backup", metavar="ID", help="default: the newest good backup")
        point.add_argument(
            "--at",
            metavar="TIME",
            help='as of a moment, e.g. "2026-11-27 14:32" (UTC unless an offset is given), '
            "from the WAL archive (PostgreSQL)",
        )
        mode = rst.add_mutually_exclusive_group(required=True)
        mode.add_argument("--side-by-side", action="store_true", help="into a new tenant")
        mode.add_argument("--live", action="store_true", help="replace the live database")
        rst.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        back = sub.add_parser("rollback", help="undo the last live restore of a tenant")
        back.add_argument("--tenant", metavar="SLUG", required=True)
        back.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        sub.add_parser("status", help="backup health of every database, and open alerts")

    def progress(self, text: str) -> None:
        if self._tty:  # one updating line on a terminal; nothing in logs
            self.stderr.write(f"\r\033[K{text}", ending="")
            self.stderr.flush()

    def _target(self, tenant=None, catalog=False):
        if catalog:
            return service.catalog_target()
        return service.tenant_target(get_tenant(tenant))

    # --- run -----------------------------------------------------------------------
    def do_run(self, tenant, all, catalog, **_):
        targets = service.all_targets() if all else [self._target(tenant, catalog)]
        failed = []
        for target in targets:
            try:
                backup = service.run_backup(target, progress=self.progress)
            except BackupError as exc:
                failed.append(target.label)
                self.progress("")
                self.stderr.write(f"{target.label}: FAILED: {exc}")
                continue
            self.progress("")
            verified = backup.copies.filter(state=BackupCopy.VERIFIED).count()
            line = (
                f"{target.label}: backup {backup.short_id} {backup.state.upper()}, "
                f"{backup.dump_bytes / 1e6:.1f} MB dumped, {backup.stored_bytes / 1e6:.1f} MB "
                f"stored, verified on {verified} of {backup.copies.count()} sites"
            )
            self.stdout.write(self.style.SUCCESS(line) if backup.state == Backup.GOOD else line)
            for copy in backup.copies.exclude(state=BackupCopy.VERIFIED):
                self.stderr.write(f"  {copy.site}: {copy.get_state_display()}: {copy.error}")
            if backup.state != Backup.GOOD:
                failed.append(target.label)
        if failed:
            raise BackupError(f"not good: {', '.join(failed)}")

    # --- list ----------------------------------------------------------------------
    def do_list(self, tenant, catalog, **_):
        target = self._target(tenant, catalog)
        backups = Backup.objects.filter(target=target.key).prefetch_related("copies")
        rows = [("ID", "TAKEN (UTC)", "STATE", "SIZE", "SITES")]
        for b in backups:
            sites = ", ".join(
                f"{c.site}{'' if c.state == BackupCopy.VERIFIED else ' (' + c.state + ')'}"
                for c in b.copies.all()
            )
            rows.append(
                (
                    b.short_id,
                    f"{b.started_at:%Y-%m-%d %H:%M:%S}",
                    b.state,
                    f"{b.stored_bytes / 1e6:.1f} MB",
                    sites or "-",
                )
            )
        _table(self.stdout.write, rows)
        if len(rows) == 1:
            self.stdout.write(f"(no backups of {target.what})")

    # --- verify --------------------------------------------------------------------
    def do_verify(self, tenant, catalog, backup, **_):
        target = self._target(tenant, catalog)
        if backup:
            backups = [service.find_backup(target.key, backup)]
        else:
            backups = list(Backup.objects.filter(target=target.key).restorable())
        if not backups:
            raise BackupError(f"there is no backup of {target.what} to verify")
        problems = 0
        for item in backups:
            bad = service.verify_backup(item, progress=self.progress)
            self.progress("")
            item.refresh_from_db()
            status = "ok" if not bad else f"{len(bad)} bad cop{'y' if len(bad) == 1 else 'ies'}"
            self.stdout.write(
                f"{item.short_id} {item.started_at:%Y-%m-%d %H:%M} {item.state}: {status}"
            )
            for copy in bad:
                self.stdout.write(f"  {copy.site}: {copy.get_state_display()}: {copy.error}")
            problems += len(bad)
        if problems:
            raise BackupError(
                f"{problems} cop{'y' if problems == 1 else 'ies'} failed verification"
            )

    # --- restore -------------------------------------------------------------------
    def do_restore(self, tenant, backup, side_by_side, live, yes, at=None, **_):
        source = get_tenant(tenant)
        mode = Restore.LIVE if live else Restore.SIDE_BY_SIDE
        if at is not None:
            return self._restore_as_of(source, pitr.parse_point(at), mode, yes)
        chosen = service.find_backup(source.id.hex, backup)
        if live:
            run = restore.request_restore(chosen, mode, "operator (CLI)")
            self._say_what_is_replaced(
                source,
                since=chosen.started_at,
                what=f"backup {chosen.short_id} of {chosen.started_at:%Y-%m-%d %H:%M} UTC",
                kept=run.previous_database,
            )
            try:
                self._confirm(yes, source, "replace the live database")
            except BackupError:
                run.delete()
                raise
        else:
            run = restore.request_restore(chosen, mode, "operator (CLI)")
        started = timezone.now()
        restore.perform(run, progress=self.progress)
        self.progress("")
        seconds = (timezone.now() - started).total_seconds()
        if mode == Restore.SIDE_BY_SIDE:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Backup {chosen.short_id} restored side by side as tenant {run.new_slug} "
                    f"in {seconds:.1f} s: {site_url(run.new_slug)}"
                )
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Live database of {source.slug} replaced by backup {chosen.short_id} "
                    f"in {seconds:.1f} s; the previous database is kept as {run.previous_database}"
                )
            )
            self.stdout.write(f"  It held, {swaps.summary(run.report)}.")

    def _restore_as_of(self, source, at, mode, yes):
        run = restore.request_point_in_time(source, at, mode, "operator (CLI)")
        what = f"The state of {at:%Y-%m-%d %H:%M:%S} UTC"
        if mode == Restore.LIVE:
            self._say_what_is_replaced(source, since=at, what=what, kept=run.previous_database)
            try:
                self._confirm(yes, source, "replace the live database")
            except BackupError:
                run.delete()
                raise
        started = timezone.now()
        restore.perform(run, progress=self.progress)
        self.progress("")
        seconds = (timezone.now() - started).total_seconds()
        if mode == Restore.SIDE_BY_SIDE:
            done = f"restored side by side as tenant {run.new_slug}: {site_url(run.new_slug)}"
        else:
            done = (
                f"put in place of the live database of {source.slug}; the previous one is "
                f"kept as {run.previous_database}"
            )
        self.stdout.write(self.style.SUCCESS(f"{what} of {source.slug} {done} ({seconds:.1f} s)"))
        self.stdout.write(f"  From {run.site}.")
        if mode == Restore.LIVE:
            self.stdout.write(f"  It held, {swaps.summary(run.report)}.")

    def _say_what_is_replaced(self, tenant, *, since, what, kept) -> None:
        """Before anything is replaced: what the live database holds since ``since``."""
        live = engine_for(tenant.database_server).tenant_entry(tenant)
        report = swaps.describe_replaced(live, since)
        self.stdout.write(f"{what} replaces the live database of {tenant.slug}.")
        self.stdout.write(f"  The live database holds, {swaps.summary(report)}.")
        self.stdout.write(
            f"  It is kept as {kept} (for `oxygis backup rollback`); the orders created since "
            "are listed in a CSV report when the swap happens, not carried over."
        )

    def _confirm(self, yes: bool, tenant, action: str) -> None:
        if yes:
            return
        if not sys.stdin.isatty():
            raise BackupError(f"refusing to {action} without confirmation: add --yes")
        answer = input(f"Type the slug to {action} of {tenant.slug}: ")
        if answer.strip() != tenant.slug:
            raise BackupError("not confirmed; nothing changed")

    # --- rollback ------------------------------------------------------------------
    def do_rollback(self, tenant, yes, **_):
        source = get_tenant(tenant)
        run = (
            Restore.objects.filter(
                Q(backup__target=source.id.hex) | Q(tenant=source),
                mode__in=(Restore.LIVE, Restore.ROLLBACK),
                state=Restore.DONE,
            )
            .exclude(previous_database="")
            .order_by("-finished_at")
            .first()
        )
        if run is None:
            raise BackupError(f"tenant {source.slug} has no live restore to roll back")
        self._say_what_is_replaced(
            source,
            since=run.started_at,
            what=f"The database {run.previous_database} that the swap of "
            f"{run.finished_at:%Y-%m-%d %H:%M} UTC replaced",
            kept="a new kept database",
        )
        self._confirm(yes, source, "roll back the live database")
        back = restore.roll_back(run, "operator (CLI)")
        self.stdout.write(self.style.SUCCESS(f"{source.slug}: {back.detail}"))

    # --- status --------------------------------------------------------------------
    def do_status(self, **_):
        workers_ok = monitor.check_workers()
        statuses = monitor.check_windows()
        newest = {}
        for target, state in Backup.objects.order_by("target", "-started_at").values_list(
            "target", "state"
        ):
            newest.setdefault(target, state)
        rows = [("DATABASE", "LAST GOOD (UTC)", "AGE", "NEWEST", "STATUS")]
        for s in statuses:
            age = s.age
            rows.append(
                (
                    s.target.label,
                    f"{s.last_good_at:%Y-%m-%d %H:%M}" if s.last_good_at else "never",
                    f"{age.total_seconds() / 3600:.1f} h" if age is not None else "-",
                    newest.get(s.target.key, "-"),
                    "OVERDUE" if s.overdue else "ok",
                )
            )
        _table(self.stdout.write, rows)
        self.stdout.write("")
        beats = list(WorkerHeartbeat.objects.all())
        for beat in beats:
            age = (timezone.now() - beat.beat_at).total_seconds()
            health = "ok" if age <= monitor.too_old(beat.interval).total_seconds() else "STALE"
            failing = f", failing since {beat.failing_since:%H:%M:%S}" if beat.failing_since else ""
            self.stdout.write(
                f"Worker {beat.holder}: last beat {age:.0f} s ago, "
                f"{beat.passes} pass(es){failing}: {health}"
            )
        if not beats:
            self.stdout.write("No backup worker is running (start `oxygis worker`).")
        archives = list(WalArchive.objects.select_related("server"))
        if archives:
            self.stdout.write("")
            for line in pitr.status_lines(archives):
                self.stdout.write(line)
        alerts = list(open_alerts())
        self.stdout.write("")
        if not alerts:
            self.stdout.write("No open alerts.")
        for alert in alerts:
            self.stdout.write(f"ALERT since {alert.raised_at:%Y-%m-%d %H:%M} UTC: {alert.message}")
        if alerts or any(s.overdue for s in statuses) or not workers_ok:
            raise CommandError(
                f"{len(alerts)} open alert(s)"
                + ("" if workers_ok else "; no healthy backup worker"),
                returncode=1,
            )
