"""Benchmark: what a support session's request costs (issue 16, C14).

One tenant with 200 orders on the engine of the run (SQLite by default; PostgreSQL with
OXYGIS_TEST_ENGINE=postgresql, as the test suite sets it up), the order list page asked
in process through Django's test client (no TLS, no server: the middleware and the view
only), alternating rounds of:

* the tenant's Sales manager;
* the same manager while a support grant is live (the banner's catalog read);
* support under a read-only grant (the grant re-read from the catalog, a StaffActor,
  and two audit-chain appends: the tenant's and the platform's).

Medians of the rounds' per-request times and their ratios to the first are printed.
Not a test: record the figures, with the machine, in bench/README.md.

    OXYGIS_TEST_ENGINE=sqlite|postgresql .venv/bin/python bench/support.py [--orders 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, bench/ comes first on the path, where bench/requests.py would hide the
# `requests` package from the test plugins: the checkout's root instead.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ["OXYGIS_TEST_BENCH_SUPPORT"] = f"{args.orders},{args.requests},{args.rounds}"
    # The suite's set-up (its own catalog, tenants on the engine of the run) runs this
    # file's one measurement; `make test` never collects it (testpaths: tests/).
    import pytest

    options = ["-q", "-s", "-p", "no:cacheprovider", "-p", "tests.conftest"]
    sys.exit(pytest.main([*options, "--rootdir", str(ROOT), f"{__file__}::test_measure"]))


def test_measure():
    orders, requests, rounds = map(int, os.environ["OXYGIS_TEST_BENCH_SUPPORT"].split(","))
    run(argparse.Namespace(orders=orders, requests=requests, rounds=rounds))


def run(args) -> None:
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from tests.fixtures import HttpsClient, unique_slug
    from tests.platform.staffing import ask_access, enter, make_staff

    from oxygis.access.actors import system
    from oxygis.platform.models import StaffMember, SupportPolicy
    from oxygis.platform.provisioning import drop_tenant, provision_tenant
    from oxygis.sales import services
    from oxygis.sales.models import Contact, Product
    from oxygis.tenancy.databases import tenant_context

    made = provision_tenant(unique_slug("bsup"), name="Bench Support", plan="paid")
    tenant = made.tenant
    try:
        with tenant_context(tenant), system(reason="bench set-up"):
            manager = get_user_model()(username="maria", email="maria@bench.example")
            manager.set_password("Bench-Manager-2026!")
            manager.save()
            manager.groups.add(Group.objects.get(name="Sales manager"))
            customer = Contact.objects.create(name="Bench customer")
            product = Product.objects.create(name="Widget", sku="W", unit_price=Decimal("9.99"))
            line = services.LineInput("Line", Decimal(1), Decimal("9.99"), Decimal("20"), product)
            for _ in range(args.orders):
                services.create_order(customer=customer, salesperson=manager, lines=[line])

        host = f"{tenant.slug}.localhost"
        personas = SimpleNamespace(
            tenant=tenant,
            host=host,
            owner_username=made.admin_username,
            owner_password=made.admin_password,
            client=lambda: HttpsClient(host),
        )

        seller = personas.client()
        seller.sign_in("maria", "Bench-Manager-2026!")
        SupportPolicy.objects.create(tenant=tenant, staff_access=SupportPolicy.ALLOWED)
        from tests.platform.staffing import open_ticket_as_owner

        support = make_staff(StaffMember.SUPPORT)
        _, ticket = open_ticket_as_owner(personas)

        def timed(client) -> float:
            started = time.perf_counter()
            for _ in range(args.requests):
                assert client.get("/sales/orders/").status_code == 200
            return (time.perf_counter() - started) / args.requests * 1000

        rounds = {"manager": [], "manager + banner": [], "support (read-only)": []}
        session = None
        for _ in range(args.rounds):
            rounds["manager"].append(timed(seller))
            if session is None:
                console, grant = ask_access(support, ticket)
                session = enter(console, grant, personas)
            rounds["manager + banner"].append(timed(seller))
            rounds["support (read-only)"].append(timed(session))
        base = statistics.median(rounds["manager"])
        engine = os.environ["OXYGIS_TEST_ENGINE"]
        print(f"\norder list page, {args.orders} orders, {engine}, median of {args.rounds} rounds")
        print(f"{'who':<22} {'ms/request':>10} {'ratio':>6}")
        for who, times in rounds.items():
            median = statistics.median(times)
            print(f"{who:<22} {median:>10.2f} {median / base:>6.2f}")
    finally:
        drop_tenant(tenant)


if __name__ == "__main__":
    main()
