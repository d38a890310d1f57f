"""The hash chain of a database's audit events (C17), after AWS CloudTrail's log-file
validation: each event's hash covers the previous one, and signed digests of the chain's
head (backups/digests.py) pin it, so that any edit is found by recomputing.

This module knows the chain only; who signs and where digests are kept is above it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC

from django.db import connections

GENESIS = "0" * 64  # the prev_hash of a database's first event
# A constant key for pg_advisory_xact_lock: one chain per database, so one lock each.
CHAIN_LOCK_KEY = int.from_bytes(hashlib.sha256(b"oxygis audit chain").digest()[:7], "big")


def canonical(event) -> bytes:
    """The bytes an event's hash covers: every field but the hashes, in a fixed form
    (sorted keys, UTC time with microseconds, no whitespace)."""
    return json.dumps(
        {
            "seq": event.seq,
            "at": event.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "action": event.action,
            "actor_id": event.actor_id,
            "actor": event.actor,
            "target": event.target,
            "ip": event.ip or None,
            "details": event.details,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def link_hash(prev_hash: str, event) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(event)).hexdigest()


def lock_chain(alias: str) -> None:
    """Make this transaction the only one appending to the chain of ``alias`` until it
    ends, so that sequence numbers have no gaps and no two events share a predecessor.

    PostgreSQL: a transaction-level advisory lock (released at commit or rollback).
    SQLite: the connection opens its transactions IMMEDIATE (the database's write lock
    is taken at BEGIN), so holding a transaction already excludes every other writer."""
    connection = connections[alias]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])


@dataclass(frozen=True)
class Break:
    """The first place where a chain is not what it should be."""

    seq: int
    problem: str

    def __str__(self) -> str:
        return f"event #{self.seq}: {self.problem}"


@dataclass(frozen=True)
class Walk:
    """What walking a chain found: how many events, its head, and its first break."""

    first_seq: int | None
    last_seq: int | None
    head_hash: str | None
    count: int
    broken: Break | None
    hashes: dict[int, str]  # of the seqs asked for (the signed digests' ones)


def walk(events: Iterable, *, anchor: tuple[int, str] | None = None, keep=()) -> Walk:
    """Recompute a chain from its events in ``seq`` order.

    ``anchor`` is (seq, hash) of the last event pruned away by retention, taken from a
    signed digest; without one the chain must start at #1 from GENESIS. ``keep`` names
    the seqs whose stored hashes are returned, to compare with signed digests."""
    expected_seq, expected_prev = (anchor[0] + 1, anchor[1]) if anchor else (1, GENESIS)
    first = last = head = None
    count = 0
    hashes: dict[int, str] = {}
    wanted = set(keep)
    for event in events:
        count += 1
        first = event.seq if first is None else first
        if event.seq != expected_seq:
            if event.seq > expected_seq:
                gone = (
                    f"#{expected_seq}"
                    if event.seq == expected_seq + 1
                    else f"#{expected_seq} to #{event.seq - 1}"
                )
                problem = f"missing: {gone} deleted before it"
            else:
                problem = f"out of order: expected #{expected_seq}"
            return Walk(first, event.seq, head, count, Break(event.seq, problem), hashes)
        if event.prev_hash != expected_prev:
            problem = (
                "its link to the previous event is broken (an event inserted, deleted "
                "or reordered before it)"
            )
            return Walk(first, event.seq, head, count, Break(event.seq, problem), hashes)
        if link_hash(event.prev_hash, event) != event.hash:
            problem = f"edited: its content no longer matches its hash ({event.action})"
            return Walk(first, event.seq, head, count, Break(event.seq, problem), hashes)
        if event.seq in wanted:
            hashes[event.seq] = event.hash
        last, head = event.seq, event.hash
        expected_seq, expected_prev = event.seq + 1, event.hash
    return Walk(first, last, head, count, None, hashes)


def chain_events(alias: str, chunk: int = 2000) -> Iterator:
    """Every event of the database ``alias``, in chain order, a chunk at a time."""
    from .models import AuditEvent

    return AuditEvent.objects.using(alias).order_by("seq").iterator(chunk_size=chunk)


def chain_head(alias: str) -> tuple[int, str] | None:
    from .models import AuditEvent

    return AuditEvent.objects.using(alias).order_by("-seq").values_list("seq", "hash").first()
