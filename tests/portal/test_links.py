"""S9: unauthenticated access only through a signed, unique-token link e-mailed to the
customer, opening that one order and nothing else."""

import re
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import signing
from django.utils import timezone

from oxygis.access.actors import acting_as, system
from oxygis.audit.models import AuditEvent
from oxygis.core import limiter
from oxygis.portal.models import OrderLink
from oxygis.portal.services import SALT
from oxygis.sales import services
from oxygis.sales.models import Contact, Order
from oxygis.tenancy.credentials import signing_salt
from oxygis.tenancy.databases import tenant_context
from tests.fixtures import (
    MEMBER_PASSWORD,
    HttpsClient,
    link_in,
    mails_to,
    reset_limits,
    without_tokens,
)
from tests.sales.test_views import client_for

NOT_FOUND = "Page not found"


@pytest.fixture
def quotation(world):
    """A fresh quotation of sam's for a customer with a unique address."""
    with tenant_context(world.tenant), acting_as(world.user("maria")):
        stamp = timezone.now().strftime("%H%M%S%f")
        customer = Contact.objects.create(name=f"Buyer {stamp}", email=f"buyer{stamp}@x.example")
    with tenant_context(world.tenant), acting_as(world.user("sam")):
        return services.create_order(
            customer=customer,
            lines=[services.LineInput("Desk", Decimal(2), Decimal("100.00"), Decimal("21"))],
        )


def send(alpha, order):
    sam = alpha.client()
    sam.sign_in("sam", MEMBER_PASSWORD)
    assert sam.post(f"/sales/orders/{order.pk}/email/").status_code == 302
    message = mails_to(order.customer.email)[-1]
    return link_in(message, "/portal/order/"), message


def path_of(url):
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def seen_on(client, signed: str) -> str:
    """The signed "what this page shows" (revision and document digest) of the
    customer's page, as its forms carry it."""
    page = client.get("/portal/order/", {"t": signed}).content.decode()
    return re.search(r'name="seen" value="([^"]+)"', page)[1]


def clear_failures(world):
    reset_limits()


def test_link_is_emailed_and_opens_the_order_without_an_account(alpha, world, quotation):
    """S9: the customer gets the link by e-mail (text and HTML), on the tenant's host;
    it shows the order with no sign-in, privately (no referrer, no cache)."""
    url, message = send(alpha, quotation)
    assert urlsplit(url).netloc == alpha.host
    assert message.get_body(preferencelist=("html",)) is not None
    token = parse_qs(urlsplit(url).query)["t"][0]
    with tenant_context(world.tenant):
        link = OrderLink.objects.get(order_id=quotation.pk)
        assert token not in link.token_digest  # only a digest is stored
        assert Order.objects.db and link.sent_to == quotation.customer.email
    page = alpha.client().get(path_of(url))
    html = page.content.decode()
    assert page.status_code == 200 and quotation.number in html and "242.00" in html
    assert page["Referrer-Policy"] == "no-referrer" and "no-store" in page["Cache-Control"]
    with tenant_context(world.tenant), system(reason="test: state"):
        assert Order.objects.get(pk=quotation.pk).state == Order.SENT


def test_confirm_records_who_when_where_and_tells_the_salesperson(alpha, world, quotation):
    """S9: confirming needs the typed name, records time, IP, user agent; the order is
    confirmed, the salesperson told; afterwards the link shows it read-only."""
    url, _ = send(alpha, quotation)
    customer = alpha.client(REMOTE_ADDR="198.51.100.23", HTTP_USER_AGENT="CustomerBrowser/1.0")
    signed = parse_qs(urlsplit(url).query)["t"][0]
    seen = seen_on(customer, signed)
    empty = customer.post(
        "/portal/order/", {"t": signed, "seen": seen, "action": "confirm", "name": ""}
    )
    assert "This field is required" in empty.content.decode()
    before = len(mails_to("sam@alpha.example"))
    done = customer.post(
        "/portal/order/",
        {"t": signed, "seen": seen, "action": "confirm", "name": "Jane <script>Buyer"},
    )
    html = done.content.decode()
    assert "Confirmed by Jane &lt;script&gt;Buyer" in html and "<script>Buyer" not in html
    with tenant_context(world.tenant), system(reason="test: check"):
        order = Order.objects.get(pk=quotation.pk)
        link = OrderLink.objects.get(order_id=quotation.pk)
    assert order.state == Order.CONFIRMED and order.confirmation_channel == "portal"
    assert link.ip == "198.51.100.23" and link.user_agent == "CustomerBrowser/1.0"
    assert link.signer_name == "Jane <script>Buyer" and link.responded_at
    assert len(mails_to("sam@alpha.example")) == before + 1
    # Replay: a second answer changes nothing, the page stays read-only.
    again = customer.post("/portal/order/", {"t": signed, "action": "decline"})
    assert (
        "Confirmed by" in again.content.decode()
        and "<form" not in again.content.decode().split("portal-answer")[-1]
    )
    with tenant_context(world.tenant), system(reason="test: check"):
        assert Order.objects.get(pk=quotation.pk).state == Order.CONFIRMED
        assert AuditEvent.objects.filter(action="portal.confirmed", target=order.number).exists()


def test_decline_with_a_reason(alpha, world, quotation):
    """S9: the customer may decline, with an optional reason; the order is declined."""
    url, _ = send(alpha, quotation)
    signed = parse_qs(urlsplit(url).query)["t"][0]
    customer = alpha.client()
    page = customer.post(
        "/portal/order/",
        {
            "t": signed,
            "seen": seen_on(customer, signed),
            "action": "decline",
            "reason": "Too expensive",
        },
    )
    assert "Declined on" in page.content.decode()
    with tenant_context(world.tenant), system(reason="test: check"):
        assert Order.objects.get(pk=quotation.pk).state == Order.DECLINED
        assert OrderLink.objects.get(order_id=quotation.pk).decline_reason == "Too expensive"


def assert_same_404(alpha, path):
    bad = alpha.client().get(path)
    reference = alpha.client().get("/no/such/page/")
    assert bad.status_code == 404
    assert NOT_FOUND in bad.content.decode()
    assert re.sub(r"<title>.*?</title>", "", without_tokens(bad)) == re.sub(
        r"<title>.*?</title>", "", without_tokens(reference)
    )


def test_tampered_unknown_and_foreign_tokens_get_the_same_404(alpha, bravo, world, quotation):
    """S9: a changed signature, a made-up token, a token of another order and a link
    presented on another tenant's host all answer the same 404."""
    clear_failures(world)
    url, _ = send(alpha, quotation)
    signed = parse_qs(urlsplit(url).query)["t"][0]
    tampered = signed[:-2] + ("AA" if not signed.endswith("AA") else "BB")
    assert_same_404(alpha, f"/portal/order/?t={tampered}")
    assert_same_404(alpha, "/portal/order/?t=nonsense")
    assert_same_404(alpha, "/portal/order/")
    # Order A's token under order B's id, signed by an insider: still no.
    with tenant_context(world.tenant):
        salt = signing_salt(SALT)
    data = signing.loads(signed, salt=salt)
    other = world.orders["sam"][0]
    forged = signing.dumps({**data, "order": other}, salt=salt)
    assert_same_404(alpha, f"/portal/order/?t={forged}")
    # The right link on another tenant's host.
    response = bravo.client().get(path_of(url))
    assert response.status_code == 404
    clear_failures(world)


def test_resend_rotates_and_revoke_or_cancel_ends_the_link(alpha, world, quotation):
    """S9: sending again replaces the link; revoking it, or cancelling the order, ends it."""
    first, _ = send(alpha, quotation)
    second, _ = send(alpha, quotation)
    assert alpha.client().get(path_of(first)).status_code == 404
    assert alpha.client().get(path_of(second)).status_code == 200
    sam = alpha.client()
    sam.sign_in("sam", MEMBER_PASSWORD)
    sam.post(f"/sales/orders/{quotation.pk}/revoke-links/", {"confirmed": "yes"})
    assert alpha.client().get(path_of(second)).status_code == 404
    third, _ = send(alpha, quotation)
    sam.post(f"/sales/orders/{quotation.pk}/cancel/", {"confirmed": "yes"})
    assert alpha.client().get(path_of(third)).status_code == 404
    clear_failures(world)


def test_expired_link_is_refused(alpha, world, quotation):
    """S9: after its expiry (a tenant setting, 30 days by default) the link is a 404."""
    url, _ = send(alpha, quotation)
    with tenant_context(world.tenant):
        link = OrderLink.objects.get(order_id=quotation.pk, revoked_at=None)
        assert round((link.expires_at - link.created_at).total_seconds() / 86400) == 30
        OrderLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(1))
    assert alpha.client().get(path_of(url)).status_code == 404
    clear_failures(world)


def test_the_link_opens_nothing_else(alpha, world, quotation):
    """S9: the link gives no session: no other order, no contact list, no API."""
    url, _ = send(alpha, quotation)
    customer = alpha.client()
    assert customer.get(path_of(url)).status_code == 200
    assert "__Host-oxygis_session" not in customer.cookies
    assert customer.get("/sales/orders/")["Location"].startswith("/accounts/login/")
    assert customer.get("/sales/contacts/")["Location"].startswith("/accounts/login/")
    assert customer.get("/api/v1/orders").status_code == 401


def test_confirm_needs_the_csrf_token(alpha, world, quotation):
    """S4/S9: the answer is a POST with the CSRF token."""
    url, _ = send(alpha, quotation)
    signed = parse_qs(urlsplit(url).query)["t"][0]
    client = alpha.client(enforce_csrf_checks=True)
    response = client.post(
        "/portal/order/",
        {"t": signed, "action": "confirm", "name": "X"},
        headers={"Origin": f"https://{alpha.host}"},
    )
    assert response.status_code == 403
    with tenant_context(world.tenant), system(reason="test: check"):
        assert Order.objects.get(pk=quotation.pk).state == Order.SENT


def test_guessing_is_rate_limited(alpha, world):
    """S9/S12: after a burst of failed links from one address, it must wait (429, with
    Retry-After): the shared limiter of every secret check."""
    clear_failures(world)
    burst = int(limiter.SECRET_CHECKS.burst)
    guesser = HttpsClient(alpha.host, REMOTE_ADDR="203.0.113.99")
    responses = [guesser.get(f"/portal/order/?t=guess{i}") for i in range(burst + 1)]
    statuses = [r.status_code for r in responses]
    assert statuses[:burst] == [404] * burst and statuses[burst] == 429
    assert int(responses[burst]["Retry-After"]) >= 1
    assert alpha.client(REMOTE_ADDR="203.0.113.100").get("/portal/order/?t=x").status_code == 404
    clear_failures(world)


def test_only_someone_who_may_change_the_order_can_send_it(alpha, world, quotation):
    """S6/S9: a read-only user cannot e-mail an order; another salesperson cannot see it."""
    rita = alpha.client()
    rita.sign_in("rita", MEMBER_PASSWORD)
    assert rita.post(f"/sales/orders/{quotation.pk}/email/").status_code == 403
    sue = alpha.client()
    sue.sign_in("sue", MEMBER_PASSWORD)
    assert sue.post(f"/sales/orders/{quotation.pk}/email/").status_code == 404


def test_link_lifetime_is_a_tenant_setting(alpha, world, quotation):
    """S9: the tenant admin sets how long links live."""
    from oxygis.accounts.models import SecurityPolicy

    with tenant_context(world.tenant):
        SecurityPolicy.objects.filter(pk=1).update(portal_link_days=7)
    try:
        send(alpha, quotation)
        with tenant_context(world.tenant):
            link = OrderLink.objects.get(order_id=quotation.pk, revoked_at=None)
            days = (link.expires_at - link.created_at).total_seconds() / 86400
        assert round(days) == 7
    finally:
        with tenant_context(world.tenant):
            SecurityPolicy.objects.filter(pk=1).update(portal_link_days=30)


def test_no_referrer_forms_still_need_the_token(alpha, world, quotation):
    """S4/S9: the portal's forms come with Origin: null (no-referrer): accepted with the
    token, refused without it; other pages still refuse Origin: null."""
    url, _ = send(alpha, quotation)
    signed = parse_qs(urlsplit(url).query)["t"][0]
    client = alpha.client(enforce_csrf_checks=True)
    page = client.get(path_of(url)).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
    seen = re.search(r'name="seen" value="([^"]+)"', page)[1]
    null = {"Origin": "null"}
    refused = client.post(
        "/portal/order/", {"t": signed, "action": "confirm", "name": "X"}, headers=null
    )
    assert refused.status_code == 403
    accepted = client.post(
        "/portal/order/",
        {"t": signed, "seen": seen, "action": "confirm", "name": "X", "csrfmiddlewaretoken": token},
        headers=null,
    )
    assert accepted.status_code == 200 and "Confirmed by X" in accepted.content.decode()
    login = client.get("/accounts/login/").content.decode()
    login_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login)[1]
    elsewhere = client.post(
        "/accounts/login/",
        {"username": "sam", "password": "x", "csrfmiddlewaretoken": login_token},
        headers=null,
    )
    assert elsewhere.status_code == 403


def history_of(world, order) -> list:
    from oxygis.sales.models import OrderEvent

    with tenant_context(world.tenant), system(reason="test: history"):
        return list(OrderEvent.objects.filter(order_id=order.pk).order_by("id"))


def test_the_history_tells_sent_opened_and_the_answer(alpha, world, quotation):
    """The order's history: sent (to whom, which revision), opened by the customer (once
    per revision, however often), accepted (typed name, revision, IP, digest); and a
    decline, with its reason, is a state of its own, not the seller's cancel."""
    url, _ = send(alpha, quotation)
    signed = parse_qs(urlsplit(url).query)["t"][0]
    customer = alpha.client()
    seen = seen_on(customer, signed)
    customer.get("/portal/order/", {"t": signed})  # opened twice: one step
    customer.post(
        "/portal/order/", {"t": signed, "seen": seen, "action": "confirm", "name": "Ada Buyer"}
    )
    steps = history_of(world, quotation)
    assert [s.kind for s in steps] == ["created", "sent", "opened", "accepted"]
    sent, opened, accepted = steps[1:]
    assert sent.details["to"] == quotation.customer.email and sent.revision == 1
    assert opened.actor == "" and opened.revision == 1
    assert accepted.actor == "" and accepted.details["name"] == "Ada Buyer"
    assert accepted.details["ip"] == "127.0.0.1" and len(accepted.details["digest"]) == 64
    page = client_for(alpha, "sam").get(f"/sales/orders/{quotation.pk}/").content.decode()
    history = page.split('id="history"')[1]
    assert "Accepted by the customer" in history and "Ada Buyer" in history
    assert "Opened by the customer" in history and quotation.customer.email in history


def test_a_declined_quotation_is_declined_with_its_reason_in_the_history(alpha, world):
    with tenant_context(world.tenant), acting_as(world.user("sam")):
        order = services.create_order(
            customer=world.contacts[0],
            lines=[services.LineInput("Desk", Decimal(1), Decimal("10.00"), Decimal("20"))],
        )
    url, _ = send(alpha, order)
    signed = parse_qs(urlsplit(url).query)["t"][0]
    visitor = alpha.client()
    visitor.post(
        "/portal/order/",
        {"t": signed, "seen": seen_on(visitor, signed), "action": "decline", "reason": "Later"},
    )
    steps = history_of(world, order)
    assert steps[-1].kind == "declined" and steps[-1].details["reason"] == "Later"
    sam = client_for(alpha, "sam")
    page = sam.get(f"/sales/orders/{order.pk}/").content.decode()
    assert "Declined by the customer" in page and "Back to quotation" in page
    assert sam.post(f"/sales/orders/{order.pk}/draft/").status_code == 302
    with tenant_context(world.tenant), system(reason="test: check"):
        assert Order.objects.get(pk=order.pk).state == Order.DRAFT
