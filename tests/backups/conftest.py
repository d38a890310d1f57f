"""Backup fixtures: three fresh file:// sites per test, a tenant with sales data and a
ballast table, and Azurite (the Azure Storage emulator) on loopback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import os
import secrets
import shutil
import subprocess
import time
from email.utils import formatdate
from pathlib import Path

import pytest

from tests.served import free_port

ROOT = Path(__file__).resolve().parents[2]
AZURITE = ROOT / ".tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
# Azurite's documented development account (public, works only against the emulator).
AZ_ACCOUNT = "devstoreaccount1"
AZ_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def file_site_urls(root: Path, names=("a", "b", "c")) -> list[str]:
    return [(root / f"site-{n}").as_uri() for n in names]


@pytest.fixture
def site_urls(tmp_path):
    return file_site_urls(tmp_path / "sites")


@pytest.fixture
def sites(site_urls):
    from oxygis.backups.sites import configured_sites

    return configured_sites(site_urls)


def site_folder(url: str) -> Path:
    return Path(url.removeprefix("file://"))


@pytest.fixture
def data_tenant(tenant_factory):
    """A tenant with contacts, products and an order, owned by its first admin."""
    from decimal import Decimal

    from django.contrib.auth import get_user_model

    from oxygis.access.actors import system
    from oxygis.sales import services
    from oxygis.sales.models import Contact, Product
    from oxygis.tenancy.databases import tenant_context

    made = tenant_factory(name="Backed Up Ltd", plan="paid")
    with tenant_context(made.tenant), system(reason="test fixture: backup data"):
        admin = get_user_model().objects.get(username="admin")
        contacts = [
            Contact.objects.create(name=f"Customer {i} {secrets.token_hex(4)}") for i in range(5)
        ]
        product = Product.objects.create(name="Gadget", sku="G-1", unit_price=Decimal("12.50"))
        services.create_order(
            customer=contacts[0],
            salesperson=admin,
            lines=[
                services.LineInput("Gadget", Decimal(3), Decimal("12.50"), Decimal("21"), product)
            ],
        )
    return made


def sales_snapshot(tenant) -> dict:
    """Everything a user would see of the tenant's sales data, comparable across DBs."""
    from oxygis.access.actors import system
    from oxygis.sales.models import Contact, Order, OrderLine, Product
    from oxygis.tenancy.databases import forget_tenant_database, tenant_context

    with tenant_context(tenant), system(reason="test: compare restored data"):
        snapshot = {
            "contacts": sorted(Contact.objects.values_list("name", "email")),
            "products": sorted(Product.objects.values_list("sku", "name", "unit_price")),
            "orders": sorted(Order.objects.values_list("number", "state", "customer__name")),
            "lines": sorted(OrderLine.objects.values_list("description", "quantity", "unit_price")),
        }
    forget_tenant_database(tenant)
    return snapshot


def add_ballast(tenant, megabytes: int) -> None:
    """An incompressible table, so that a backup takes long enough to be interrupted."""
    from oxygis.backups.dumps import DatabaseRef
    from oxygis.tenancy.engines import engine_for

    ref = DatabaseRef.from_entry(engine_for(tenant.database_server).tenant_entry(tenant))
    rows = [(os.urandom(1 << 20),) for _ in range(megabytes)]
    if ref.engine == "sqlite":
        import sqlite3

        conn = sqlite3.connect(ref.name)
        with conn:
            conn.execute("CREATE TABLE ballast (b BLOB)")
            conn.executemany("INSERT INTO ballast VALUES (?)", rows)
        conn.close()
    else:
        with ref.connect(autocommit=True) as conn:
            conn.execute("CREATE TABLE ballast (b bytea)")
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO ballast VALUES (%s)", rows)


def create_container(port: int, name: str, connection=None) -> None:
    """Create a blob container in Azurite (SharedKey-signed REST call), over plain HTTP
    or the ``connection`` given (TLS)."""
    date, version = formatdate(usegmt=True), "2021-08-06"
    path = f"/{AZ_ACCOUNT}/{name}"
    to_sign = "\n".join(
        [
            "PUT",
            *[""] * 11,
            f"x-ms-date:{date}\nx-ms-version:{version}",
            f"/{AZ_ACCOUNT}{path}\nrestype:container",
        ]
    )
    signature = base64.b64encode(
        hmac.new(base64.b64decode(AZ_KEY), to_sign.encode(), hashlib.sha256).digest()
    ).decode()
    conn = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(
        "PUT",
        f"{path}?restype=container",
        headers={
            "x-ms-date": date,
            "x-ms-version": version,
            "Authorization": f"SharedKey {AZ_ACCOUNT}:{signature}",
            "Content-Length": "0",
        },
    )
    response = conn.getresponse()
    assert response.status == 201, f"Azurite refused to create a container: {response.status}"


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    """Azurite's blob service on a free loopback port; yields a factory of az:// URLs."""
    if not AZURITE.exists():
        message = "Azurite is not installed: run scripts/ensure-azurite"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: the Azure tests must run)")
        pytest.skip(message)
    port = free_port()
    folder = tmp_path_factory.mktemp("azurite")
    process = subprocess.Popen(
        [
            str(AZURITE),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            str(folder),
            "--silent",
            "--skipApiVersionCheck",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("Azurite did not start")
            time.sleep(0.2)
    old_key = os.environ.get("AZURE_STORAGE_ACCOUNT_KEY")
    os.environ["AZURE_STORAGE_ACCOUNT_KEY"] = AZ_KEY  # as in production: from the environment

    def make_site(container: str | None = None) -> str:
        container = container or f"c{secrets.token_hex(6)}"
        create_container(port, container)
        return (
            f"az://{container}/oxygis?account_name={AZ_ACCOUNT}"
            f"&endpoint=http://127.0.0.1:{port}/{AZ_ACCOUNT}&allow_http=true"
        )

    make_site.port = port
    yield make_site
    if old_key is None:
        os.environ.pop("AZURE_STORAGE_ACCOUNT_KEY", None)
    process.terminate()
    process.wait(timeout=10)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server():
    """An S3-compatible server (moto) on a free loopback port; yields a factory of s3://
    site URLs, each on a new bucket."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    # As in production, credentials come from the environment, never the site URL.
    os.environ.update(AWS_ACCESS_KEY_ID="oxygis-test", AWS_SECRET_ACCESS_KEY="oxygis-test")

    def make_site() -> str:
        bucket = f"oxygis-{secrets.token_hex(6)}"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("PUT", f"/{bucket}", headers={"Content-Length": "0"})
        assert conn.getresponse().status == 200, "could not create the test bucket"
        return f"s3://{bucket}/oxygis?region=us-east-1&endpoint=http://127.0.0.1:{port}&allow_http=true"

    yield make_site
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
