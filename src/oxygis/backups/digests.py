"""Signed digests of the audit chains (C17), as AWS CloudTrail's digest files.

The worker signs the head of every database's chain each hour (and before each backup of
it) with the platform's Ed25519 key, keeps the digest in the catalog and puts a copy on
every backup site. ``verify`` recomputes a chain and holds it against its digests: an
edited, deleted, inserted or reordered event breaks the chain, and a chain cut short, or
rewritten whole with fresh hashes, no longer matches what was signed.

Before signing, the worker checks what changed since the last digest (cheap), and does
not sign a chain that no longer matches it: it raises an alert instead.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from oxygis.audit.chain import Break, chain_events, chain_head, walk
from oxygis.audit.models import AuditEvent
from oxygis.tenancy.context import CATALOG
from oxygis.tenancy.databases import tenant_context
from oxygis.tenancy.engines import engine_for
from oxygis.tenancy.models import Tenant

from . import alerts
from .keys import configured_keys
from .models import AuditDigest
from .sites import SiteError, configured_sites
from .targets import Target, all_targets, catalog_target, tenant_target

log = logging.getLogger("oxygis.audit")

DIGEST_FOLDER = "audit-digests"


@contextmanager
def chain_database(target: Target):
    """The alias of the database whose chain ``target`` names."""
    if target.tenant is None:
        yield CATALOG
    else:
        with tenant_context(target.tenant) as alias:
            yield alias


def payload(digest: AuditDigest) -> bytes:
    """What the signature covers."""
    return json.dumps(
        {
            "target": digest.target,
            "label": digest.label,
            "kind": digest.kind,
            "seq": digest.seq,
            "hash": digest.head_hash,
            "signed_at": digest.signed_at.astimezone(UTC).isoformat(),
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def _sign(target: Target, kind: str, seq: int, head_hash: str, keys, sites) -> AuditDigest:
    digest = AuditDigest(
        target=target.key,
        label=target.label,
        kind=kind,
        seq=seq,
        head_hash=head_hash,
        signed_at=timezone.now(),
        key_id=keys.signing_key_id,
    )
    digest.signature = keys.sign(payload(digest))
    digest.save()
    document = json.loads(payload(digest)) | {
        "key_id": digest.key_id,
        "signature": digest.signature,
    }
    name = f"{DIGEST_FOLDER}/{target.key}/{seq:012d}-{kind}-{digest.signed_at:%Y%m%dT%H%M%S}.json"
    for site in sites:
        try:
            site.put(name, json.dumps(document, indent=1).encode())
        except SiteError as exc:  # the catalog has it; the site's probe alerts on the site
            log.warning("audit digest of %s not copied to %s: %s", target.what, site.name, exc)
    return digest


def latest_digest(target: Target) -> AuditDigest | None:
    return AuditDigest.objects.filter(target=target.key).order_by("-seq", "-signed_at").first()


def _check_since(alias: str, last: AuditDigest) -> Break | None:
    """Cheap check before signing: the signed event is unchanged and what came after it
    links on to it."""
    events = AuditEvent.objects.using(alias).filter(seq__gte=last.seq).order_by("seq")
    first = events.values_list("prev_hash", flat=True).first()
    if first is None:
        return Break(last.seq, f"missing: the chain ends before #{last.seq}, which was signed")
    result = walk(events.iterator(chunk_size=2000), anchor=(last.seq - 1, first), keep={last.seq})
    if result.broken:
        return result.broken
    if result.hashes.get(last.seq) != last.head_hash:
        return Break(last.seq, "differs from the signed digest (the chain was rewritten)")
    return None


def seal(target: Target, *, keys=None, sites=None) -> AuditDigest | None:
    """Sign the head of ``target``'s chain if it moved since the last digest. Returns the
    new digest, or None (nothing new, or the chain is broken: alerted)."""
    keys = keys or configured_keys()
    with chain_database(target) as alias:
        head = chain_head(alias)
        last = latest_digest(target)
        if head is None or (last is not None and last.seq == head[0]):
            return None
        broken = _check_since(alias, last) if last is not None else None
    if broken is not None:
        alerts.raise_alert(
            f"audit-chain:{target.key}",
            f"the audit trail of {target.what} is broken at {broken}; it is no longer "
            f"signed: run oxygis audit verify",
        )
        return None
    return _sign(target, AuditDigest.HEAD, head[0], head[1], keys, _sites(sites))


def seal_due(now: datetime | None = None, *, keys=None, sites=None) -> int:
    """Sign every chain whose last digest is older than OXYGIS_AUDIT_SEAL_MINUTES."""
    now = now or timezone.now()
    every = timedelta(minutes=settings.AUDIT_SEAL_MINUTES)
    sites = _sites(sites)
    # Only the digests of the last period are read: the table holds one per active
    # database per hour, for the whole retention period.
    recent = set(
        AuditDigest.objects.filter(signed_at__gt=now - every)
        .values_list("target", flat=True)
        .distinct()
    )
    sealed = 0
    for target in all_targets():
        if target.key in recent:
            continue
        try:
            if seal(target, keys=keys, sites=sites) is not None:
                sealed += 1
        except Exception as exc:  # one database out of reach must not stop the others
            log.error("could not seal the audit trail of %s: %s", target.what, exc)
    return sealed


# --- verification --------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    target: Target
    events: int
    first_seq: int | None
    last_seq: int | None
    signed_through: int | None
    signed_at: datetime | None
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def __str__(self) -> str:
        name = self.target.what
        if self.problem:
            return f"BROKEN {name}: {self.problem}"
        if not self.events:
            return f"ok     {name}: no events yet"
        text = f"ok     {name}: {self.events} events (#{self.first_seq} to #{self.last_seq})"
        if self.signed_through is None:
            return text + ", none signed yet"
        text += f", signed through #{self.signed_through} at {self.signed_at:%Y-%m-%d %H:%M} UTC"
        unsigned = self.last_seq - self.signed_through
        return text + (f"; {unsigned} newer not yet signed" if unsigned else "")


def verify(target: Target, *, keys=None) -> Verdict:
    """Recompute ``target``'s whole chain and hold it against every signed digest."""
    keys = keys or configured_keys()
    digests = list(AuditDigest.objects.filter(target=target.key).order_by("seq", "signed_at"))

    def verdict(problem, result=None, signed=None):
        return Verdict(
            target,
            result.count if result else 0,
            result.first_seq if result else None,
            result.last_seq if result else None,
            signed.seq if signed else None,
            signed.signed_at if signed else None,
            problem,
        )

    for digest in digests:
        if not keys.check(payload(digest), digest.signature):
            return verdict(
                f"the digest of #{digest.seq} signed at {digest.signed_at:%Y-%m-%d %H:%M} "
                "does not carry a valid signature (forged or altered digest)"
            )
    try:
        with chain_database(target) as alias:
            first = (
                AuditEvent.objects.using(alias)
                .order_by("seq")
                .values_list("seq", flat=True)
                .first()
            )
            anchor = None
            if first is not None and first > 1:
                pruned = [d for d in digests if d.kind == AuditDigest.PRUNED and d.seq == first - 1]
                if not pruned:
                    return verdict(
                        f"missing: events #1 to #{first - 1} are gone, and no signed retention "
                        "cut explains it (deleted from the start)"
                    )
                anchor = (pruned[-1].seq, pruned[-1].head_hash)
            result = walk(chain_events(alias), anchor=anchor, keep={d.seq for d in digests})
    except DatabaseError as exc:
        # The audit table itself gone or unreadable is a finding, not a crash.
        return verdict(f"its audit trail cannot be read: {str(exc).strip().splitlines()[0]}")
    if result.broken:
        return verdict(str(result.broken), result)
    last_signed = None
    for digest in digests:
        if anchor is not None and digest.seq < anchor[0]:
            continue  # its event was pruned by retention (the cut itself is signed)
        if result.last_seq is None or digest.seq > result.last_seq:
            ends = f"#{result.last_seq}" if result.last_seq else "nothing"
            return verdict(
                f"truncated: the chain ends at {ends}, but #{digest.seq} was signed at "
                f"{digest.signed_at:%Y-%m-%d %H:%M} UTC (events deleted from the end)",
                result,
            )
        stored = anchor[1] if anchor and digest.seq == anchor[0] else result.hashes.get(digest.seq)
        if stored != digest.head_hash:
            return verdict(
                f"event #{digest.seq}: differs from what was signed at "
                f"{digest.signed_at:%Y-%m-%d %H:%M} UTC (the chain was rewritten)",
                result,
            )
        last_signed = digest  # in seq order: the last one is the furthest
    return verdict(None, result, last_signed)


def targets_named(*, slug: str | None = None, everything: bool = False, catalog: bool = False):
    """The targets a command names: one tenant, the catalog, or all of them."""
    if everything:
        return all_targets()
    if catalog:
        return [catalog_target()]
    tenant = (
        Tenant.objects.filter(slug=slug, state__in=Tenant.EXISTING)
        .select_related("plan", "database_server")
        .first()
    )
    if tenant is None:
        raise LookupError(f"no tenant {slug!r}")
    return [tenant_target(tenant)]


# --- retention -----------------------------------------------------------------------
def prune(target: Target, now: datetime | None = None, *, keys=None, sites=None) -> int:
    """Delete the events older than OXYGIS_AUDIT_RETENTION_DAYS, only whole signed
    segments: through the newest digest whose event is that old (never the head), once
    that cut is itself signed (a PRUNED digest, where verification then starts).
    Returns how many events went."""
    days = settings.AUDIT_RETENTION_DAYS
    if not days:
        return 0
    now = now or timezone.now()
    with chain_database(target) as alias:
        events = AuditEvent.objects.using(alias)
        head = chain_head(alias)
        old = (
            events.filter(at__lt=now - timedelta(days=days))
            .order_by("-seq")
            .values_list("seq", flat=True)
            .first()
        )
        if head is None or old is None:
            return 0
        cut = (
            AuditDigest.objects.filter(target=target.key, seq__lte=old, seq__lt=head[0])
            .order_by("-seq")
            .first()
        )
        # Nothing signed that old, already pruned there, or a chain that no longer
        # matches its digest (never cut away the evidence: the seal alerts on it).
        if cut is None or not events.filter(seq__lte=cut.seq).exists() or _check_since(alias, cut):
            return 0
    keys = keys or configured_keys()
    _sign(target, AuditDigest.PRUNED, cut.seq, cut.head_hash, keys, _sites(sites))
    if target.tenant is None:
        from oxygis.tenancy.databases import default_server

        engine, entry = engine_for(default_server()), settings.DATABASES[CATALOG]
    else:
        engine = engine_for(target.tenant.database_server)
        entry = engine.tenant_entry(target.tenant)
    gone = engine.prune_audit(entry, cut.seq + 1)
    log.info("audit trail of %s: %d events older than %d days pruned", target.what, gone, days)
    return gone


def _sites(sites):
    return configured_sites() if sites is None else sites
