"""C17, incident analysis: refusals of existing objects are recorded, suspicious patterns
raise alerts, and the tenant's audit page filters and exports its trail."""

from __future__ import annotations

import csv
import io

from oxygis.audit import patterns
from oxygis.audit.events import record
from oxygis.audit.models import AuditEvent
from oxygis.backups.models import Alert
from oxygis.core import limiter
from oxygis.tenancy.databases import tenant_context
from tests.fixtures import MEMBER_PASSWORD, HttpsClient


def refusals(tenant, actor):
    with tenant_context(tenant):
        return list(AuditEvent.objects.filter(action="access.refused", actor=actor))


def test_a_refused_existing_object_is_recorded_and_a_missing_one_is_not(alpha, world):
    """C17/S6: sam asking for sue's order gets the same 404 as for a missing one, but the
    first is in the audit trail, naming him and the object."""
    sam = alpha.client()
    sam.sign_in("sam", MEMBER_PASSWORD)
    before = len(refusals(alpha.tenant, "sam"))
    theirs = world.orders["sue"][0]
    assert sam.get(f"/sales/orders/{theirs}/").status_code == 404
    assert sam.get("/sales/orders/999999/").status_code == 404
    found = refusals(alpha.tenant, "sam")
    assert len(found) == before + 1 and str(theirs) in found[0].target
    assert found[0].details["model"] == "sales.order"


def test_many_refusals_to_one_actor_raise_an_alert(alpha, world, monkeypatch):
    """C17: more refusals than the hourly threshold for one actor: an alert."""
    monkeypatch.setattr(patterns, "REFUSALS", limiter.Rate("test-refusals", 3, 3600))
    sam = alpha.client()
    sam.sign_in("sam", MEMBER_PASSWORD)
    for pk in world.orders["sue"] + world.orders["maria"]:
        sam.get(f"/sales/orders/{pk}/")
    alert = Alert.objects.get(
        key__startswith="suspicious-refusals:",
        key__contains=alpha.tenant.slug,
        resolved_at__isnull=True,
    )
    assert "sam" in alert.message


def test_many_failed_sign_ins_in_a_tenant_raise_an_alert(tenant_factory, monkeypatch):
    """C17: failed sign-ins in one tenant past the hourly threshold: an alert."""
    monkeypatch.setattr(patterns, "FAILED_SIGNINS", limiter.Rate("test-signins", 3, 3600))
    tenant = tenant_factory().tenant
    with tenant_context(tenant):
        for n in range(4):
            record("login.failure", target=f"guess{n}")
    alert = Alert.objects.get(key=f"suspicious-signins:tenant {tenant.slug}")
    assert alert.resolved_at is None and "failed sign-ins" in alert.message


def test_the_audit_page_filters_and_exports_csv(tenant_factory):
    """C17: the admin filters the trail by action and actor, and downloads it as CSV,
    where a cell that a spreadsheet would run as a formula is made plain text."""
    made = tenant_factory()
    tenant = made.tenant
    with tenant_context(tenant):
        record("policy.changed", target='=HYPERLINK("http://evil")')
        record("user.invited", target="someone")
    client = HttpsClient(f"{tenant.slug}.localhost")
    client.sign_in("admin", made.admin_password)
    page = client.get("/settings/audit/?action=user.invited").content.decode()
    assert "someone" in page and "HYPERLINK" not in page
    page = client.get("/settings/audit/?actor=admin").content.decode()
    assert "Signed in" in page and "someone" not in page
    answer = client.get("/settings/audit/?action=policy.changed&format=csv")
    assert answer["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(answer.streaming_content).decode("utf-8-sig"))))
    assert rows[0][:3] == ["seq", "at_utc", "action"] and len(rows) == 2
    assert rows[1][5].startswith("'=HYPERLINK")
