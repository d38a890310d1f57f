"""S6/S13 through the JSON API: API keys (scoped, expiring, revocable, stored hashed),
session + CSRF, the same rules and 404s as the pages, JSON errors for bad input."""

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from oxygis.accounts.apikeys import issue_key
from oxygis.accounts.models import ApiKey
from oxygis.tenancy.databases import tenant_context
from tests.fixtures import MEMBER_PASSWORD


@pytest.fixture
def key_for(world):
    def make(name, scope="read-write"):
        with tenant_context(world.tenant):
            return issue_key(world.user(name), name="test", scope=scope, days=30)[1]

    return make


def call(alpha, method, path, token=None, body=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    kwargs = {"content_type": "application/json", "data": json.dumps(body)} if body else {}
    response = getattr(alpha.client(), method)(f"/api/v1{path}", headers=headers, **kwargs)
    return response.status_code, (response.json() if response.content else None)


def test_no_credentials_is_401_json(alpha, world):
    """S6: the API refuses anonymous calls in JSON (no redirect to a sign-in page)."""
    status, body = call(alpha, "get", "/orders")
    assert status == 401 and "detail" in body
    assert call(alpha, "get", "/orders", token="oxy_nope_nope")[0] == 401


def test_lists_follow_the_rules(alpha, world, key_for):
    """S6/S13: the same record rules as the pages: sam sees his orders only."""
    status, body = call(alpha, "get", "/orders?limit=100", token=key_for("sam"))
    assert status == 200
    assert {o["id"] for o in body["items"]} == set(world.orders["sam"]) | {
        o["id"] for o in body["items"] if o["salesperson_id"] == world.user("sam").pk
    }
    assert all(o["salesperson_id"] == world.user("sam").pk for o in body["items"])
    status, body = call(alpha, "get", "/orders?limit=100", token=key_for("maria"))
    assert set(world.orders["sue"]) <= {o["id"] for o in body["items"]}


def test_invisible_and_missing_ids_answer_the_same_404(alpha, world, key_for):
    """S6: every order endpoint answers an invisible id exactly like a missing one."""
    token = key_for("sam")
    theirs = world.orders["sue"][0]
    for method, path, body in [
        ("get", "/orders/{}", None),
        ("patch", "/orders/{}", {"currency": "USD"}),
        ("post", "/orders/{}/confirm", None),
        ("post", "/orders/{}/cancel", None),
        ("post", "/orders/{}/lines", {"description": "x", "unit_price": "1"}),
    ]:
        hidden = call(alpha, method, path.format(theirs), token, body)
        missing = call(alpha, method, path.format(987654), token, body)
        assert hidden == missing == (404, {"detail": "Not found."}), path


def test_create_confirm_cancel_through_the_api(alpha, world, key_for):
    """A salesperson creates an order with lines, confirms and cancels it; amounts exact."""
    token = key_for("sam")
    status, order = call(
        alpha,
        "post",
        "/orders",
        token,
        {
            "customer_id": world.contacts[0].pk,
            "currency": "usd",
            "lines": [
                {"product_id": world.products[0].pk, "quantity": "3"},
                {
                    "description": "Setup",
                    "unit_price": "0.10",
                    "quantity": "0.05",
                    "tax_rate": "21",
                },
            ],
        },
    )
    assert status == 201, order
    assert order["salesperson_id"] == world.user("sam").pk and order["currency"] == "USD"
    assert order["amount_untaxed"] == "29.98"  # 3 x 9.99 + 0.005 -> 0.01
    status, confirmed = call(alpha, "post", f"/orders/{order['id']}/confirm", token)
    assert status == 200 and confirmed["state"] == "confirmed"
    assert confirmed["confirmation_channel"] == "api"
    status, again = call(alpha, "post", f"/orders/{order['id']}/confirm", token)
    assert status == 409 and "cannot go from confirmed" in again["detail"]
    assert call(alpha, "post", f"/orders/{order['id']}/cancel", token)[1]["state"] == "cancelled"


def test_salesperson_cannot_create_for_someone_else(alpha, world, key_for):
    """S13: assigning a new order to another salesperson is a 403."""
    status, _ = call(
        alpha,
        "post",
        "/orders",
        key_for("sam"),
        {"customer_id": world.contacts[0].pk, "salesperson_id": world.user("sue").pk},
    )
    assert status == 403


def test_read_scope_cannot_write(alpha, world, key_for):
    """S6: a read-only key reads, and every write is refused (403)."""
    token = key_for("maria", scope="read")
    assert call(alpha, "get", "/contacts", token)[0] == 200
    assert call(alpha, "post", "/contacts", token, {"name": "Nope"})[0] == 403
    assert call(alpha, "post", f"/orders/{world.orders['sam'][0]}/cancel", token)[0] == 403


def test_expired_and_revoked_keys_stop_working(alpha, world, key_for):
    """S6: an expired or revoked key is a 401."""
    token = key_for("maria")
    assert call(alpha, "get", "/products", token)[0] == 200
    prefix = token.split("_")[1]
    with tenant_context(world.tenant):
        ApiKey.objects.filter(prefix=prefix).update(expires_at=timezone.now() - timedelta(1))
    assert call(alpha, "get", "/products", token)[0] == 401
    token = key_for("maria")
    with tenant_context(world.tenant):
        ApiKey.objects.filter(prefix=token.split("_")[1]).update(revoked_at=timezone.now())
    assert call(alpha, "get", "/products", token)[0] == 401
    # The token is stored only as a digest.
    with tenant_context(world.tenant):
        stored = ApiKey.objects.get(prefix=token.split("_")[1])
    assert token.split("_", 2)[2] not in stored.digest


def test_key_of_one_tenant_is_unknown_on_another(alpha, bravo, world, key_for):
    """C9/S6: alpha's key means nothing on bravo's host."""
    token = key_for("maria")
    response = bravo.client().get("/api/v1/orders", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/contacts", {"name": ""}),
        ("post", "/contacts", {"name": "x" * 500}),
        ("post", "/products", {"name": "P", "sku": "S", "unit_price": "-1"}),
        ("post", "/products", {"name": "P", "sku": "S", "unit_price": "abc"}),
        ("post", "/products", {"name": "P", "sku": "W-0", "unit_price": "1"}),  # duplicate
        ("post", "/orders", {"customer_id": "nope"}),
        ("post", "/orders", {"customer_id": 1, "currency": "EURO"}),
        ("post", "/orders", {"customer_id": 1, "lines": [{"quantity": "0"}]}),
        ("post", "/orders", {"customer_id": 1, "lines": [{"description": "no price"}]}),
        ("get", "/orders?state=lost", None),
        ("get", "/orders?limit=-5", None),
        ("get", "/orders/not-a-number", None),
    ],
)
def test_bad_input_is_a_4xx_json_error(alpha, world, key_for, method, path, body):
    """Bad input of any shape: a 4xx JSON answer saying what is wrong, never a 500."""
    status, answer = call(alpha, method, path, key_for("maria"), body)
    assert 400 <= status < 500 and answer and "detail" in answer, (status, answer)


def test_session_auth_needs_the_csrf_token(alpha, world):
    """S4: with a session cookie, a write needs the CSRF token; a read does not."""
    client = alpha.client(enforce_csrf_checks=True)
    signed = alpha.client()
    signed.sign_in("maria", MEMBER_PASSWORD)
    client.cookies = signed.cookies
    assert client.get("/api/v1/contacts").status_code == 200
    refused = client.post("/api/v1/contacts", data={"name": "X"}, content_type="application/json")
    assert refused.status_code == 403
    page = client.get("/sales/contacts/").content.decode()
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page)[1]
    accepted = client.post(
        "/api/v1/contacts",
        data={"name": "Via session"},
        content_type="application/json",
        headers={"X-CSRFToken": token, "Origin": f"https://{alpha.host}"},
    )
    assert accepted.status_code == 201


def test_openapi_schema_is_served(alpha, world):
    response = alpha.client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert "/api/v1/orders/{order_id}/confirm" in schema["paths"]


def test_api_keys_page_creates_shows_once_and_revokes(alpha, world):
    """S12: keys are managed from the user's settings (re-authentication applies)."""
    client = alpha.client()
    client.sign_in("maria", MEMBER_PASSWORD)
    made = client.post("/accounts/api-keys/", {"name": "ERP", "scope": "read", "days": "30"})
    token = re.search(r'id="new-api-key">(oxy_[^<]+)<', made.content.decode())[1]
    assert "no-store" in made["Cache-Control"]
    listing = client.get("/accounts/api-keys/").content.decode()
    assert token not in listing and token.split("_")[1] in listing
    assert call(alpha, "get", "/contacts", token)[0] == 200
    with tenant_context(world.tenant):
        key = ApiKey.objects.get(prefix=token.split("_")[1])
    assert (
        client.post(f"/accounts/api-keys/{key.pk}/revoke/", {"confirmed": "yes"}).status_code == 302
    )
    assert call(alpha, "get", "/contacts", token)[0] == 401


def test_contacts_and_products_read_and_update(alpha, world, key_for):
    """S13: a manager reads and updates contacts and products; a salesperson only reads."""
    manager, seller = key_for("maria"), key_for("sam")
    contact, product = world.contacts[1], world.products[1]
    assert call(alpha, "get", f"/contacts/{contact.pk}", seller)[1]["name"] == contact.name
    assert call(alpha, "patch", f"/contacts/{contact.pk}", seller, {"city": "Gent"})[0] == 403
    status, changed = call(alpha, "patch", f"/contacts/{contact.pk}", manager, {"city": "Gent"})
    assert status == 200 and changed["city"] == "Gent"
    assert call(alpha, "get", f"/products/{product.pk}", seller)[1]["sku"] == product.sku
    status, changed = call(
        alpha, "patch", f"/products/{product.pk}", manager, {"unit_price": "12.34"}
    )
    assert status == 200 and changed["unit_price"] == "12.34"
    assert call(alpha, "patch", f"/products/{product.pk}", seller, {"active": False})[0] == 403


def test_api_root_and_unknown_paths(alpha, world, key_for):
    """There is nothing at the API's root; unknown API addresses answer JSON 404s."""
    assert alpha.client().get("/api/v1/").status_code == 404
    assert alpha.client().get("/api/v1/no/such/thing").json() == {"detail": "Not found."}


def test_out_of_range_numbers_are_4xx_not_500(alpha, world, key_for):
    """Found by schemathesis on PostgreSQL: ids and offsets beyond a bigint must be
    refused before they reach the database."""
    token = key_for("maria")
    huge = "9" * 25
    assert call(alpha, "get", f"/orders/{huge}", token)[0] == 404
    assert call(alpha, "get", f"/orders?offset={huge}", token)[0] == 422
    assert call(alpha, "get", f"/orders?customer_id={huge}", token)[0] == 422
    assert call(alpha, "post", "/orders", token, {"customer_id": int(huge)})[0] == 422
    maria = alpha.client()
    maria.sign_in("maria", MEMBER_PASSWORD)
    assert maria.get(f"/sales/orders/{huge}/").status_code == 404


def test_nul_characters_are_a_4xx_not_500(alpha, world, key_for):
    """Found by schemathesis on PostgreSQL: NUL in text cannot be stored or searched."""
    token = key_for("maria")
    assert call(alpha, "get", "/orders?q=a%00b", token)[0] == 422
    assert call(alpha, "post", "/contacts", token, {"name": "a\x00b"})[0] == 422
    assert (
        call(alpha, "patch", f"/contacts/{world.contacts[0].pk}", token, {"city": "x\x00"})[0]
        == 422
    )
    maria = alpha.client()
    maria.sign_in("maria", MEMBER_PASSWORD)
    assert maria.get("/sales/contacts/?q=a%00b").status_code == 200
