"""Benchmark: failover of the PostgreSQL primary under write load (issue 19, C6).

A Patroni cluster on loopback (tests/ha.py: etcd x3, a primary and a synchronous
standby), Oxygis on it with a multi-host URL (`oxygis serve`, 2 processes), 3 writers
creating orders through the API without pause. Each round kills the current primary:
``postmaster`` rounds kill -9 its PostgreSQL (Patroni hands over at once,
primary_start_timeout 0), ``node`` rounds kill -9 its Patroni too (a machine gone: the
standby waits for the leader key to expire, ttl 20 s). Between rounds the old primary
rejoins as the standby (pg_rewind). Printed per round: seconds without a successful
write (RTO), acknowledged orders missing afterwards (RPO), 503s and other errors seen
by clients, whether Oxygis had to be restarted.

Not a test (tests/tenancy/test_ha.py asserts the same with one round): record the
figures, with the machine, in bench/README.md.

    python bench/failover.py [--postmaster-rounds 3] [--node-rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.* (run as a script)

from tests import ha  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postmaster-rounds", type=int, default=3)
    parser.add_argument("--node-rounds", type=int, default=2)
    args = parser.parse_args()
    if not ha.available():
        raise SystemExit("patroni or etcd is missing: run scripts/ensure-patroni")
    cluster = ha.Cluster()
    rounds = []
    try:
        platform = ha.Platform(cluster, Path(tempfile.mkdtemp(prefix="oxygis-bench-ha-")))
        try:
            kinds = ["postmaster"] * args.postmaster_rounds + ["node"] * args.node_rounds
            for number, kind in enumerate(kinds, 1):
                figures = ha.failover_under_load(platform, kill=kind)
                rounds.append(figures)
                print(
                    f"round {number} ({kind}): {figures['old_primary']} -> "
                    f"{figures['new_primary']}, RTO {figures['seconds_without_writes']:.1f} s, "
                    f"lost {figures['lost']} of {figures['acknowledged']}, "
                    f"503s {figures['unavailable_503']}, errors {figures['error_count']}",
                    flush=True,
                )
                if kind == "node":  # the machine comes back
                    cluster.start_node(figures["old_primary"])
        finally:
            platform.stop()
    finally:
        cluster.stop()
    report(rounds)


def report(rounds: list[dict]) -> None:
    print(
        f"\n{'kill':<11} {'rounds':>6} {'RTO s (each)':<24} {'acked':>7} {'lost':>5} "
        f"{'503s':>5} {'errors':>6} {'restarted':>9}"
    )
    for kind in ("postmaster", "node"):
        mine = [r for r in rounds if r["kill"] == kind]
        if not mine:
            continue
        rto = [r["seconds_without_writes"] for r in mine]
        print(
            f"{kind:<11} {len(mine):>6} "
            f"{' / '.join(f'{s:.1f}' for s in rto):<24} "
            f"{sum(r['acknowledged'] for r in mine):>7} {sum(r['lost'] for r in mine):>5} "
            f"{sum(r['unavailable_503'] for r in mine):>5} "
            f"{sum(r['error_count'] for r in mine):>6} "
            f"{'yes' if any(r['server_restarted'] for r in mine) else 'no':>9}"
        )
        print(f"{'':<11} {'':>6} median {statistics.median(rto):.1f} s, max {max(rto):.1f} s")
    for r in rounds:
        if r["errors"] or r["missing_examples"]:
            print("e.g.", r["errors"][:2], r["missing_examples"][:2])


if __name__ == "__main__":
    main()
