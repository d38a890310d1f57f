"""S13 (roles part): the built-in roles, as groups with permissions, in every database.

Built-in roles are defined here in code and re-applied after every migration, so that a
new permission reaches them everywhere; tenant admins add custom roles beside them.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import Group, Permission
from django.utils.translation import gettext_lazy as _

ADMINISTRATOR = "Administrator"
SALES_MANAGER = "Sales manager"
SALESPERSON = "Salesperson"
READ_ONLY = "Read-only"

# Every permission of these apps goes to the Administrator.
ADMIN_APPS = ("accounts", "audit", "auth", "sales", "portal")
SALES_MODELS = ("contact", "product", "order", "orderline")
ROLE_PERMISSIONS = {
    SALES_MANAGER: [
        f"sales.{verb}_{m}" for m in SALES_MODELS for verb in ("view", "add", "change", "delete")
    ]
    + ["sales.view_all_orders", "sales.change_all_orders", "sales.view_tax"]
    + ["sales.view_orderevent"],
    SALESPERSON: [f"sales.view_{m}" for m in SALES_MODELS]
    + [
        "sales.view_tax",
        "sales.view_orderevent",
        "sales.add_order",
        "sales.change_order",
        "sales.add_orderline",
        "sales.change_orderline",
        "sales.delete_orderline",
    ],
    READ_ONLY: [f"sales.view_{m}" for m in SALES_MODELS]
    + ["sales.view_all_orders", "sales.view_tax", "sales.view_orderevent"],
}
BUILTIN_ROLES = (ADMINISTRATOR, SALES_MANAGER, SALESPERSON, READ_ONLY)


@dataclass(frozen=True)
class Right:
    """One right as the role editor shows it, in plain words, and the permissions it
    stands for. A feature's "see" right comes with any other right of that feature."""

    key: str
    label: str
    permissions: tuple[str, ...]


ORDER_READING = ("sales.view_order", "sales.view_orderline", "sales.view_orderevent")
# By feature, in the order the editor shows them. Permissions of no right here (Django's
# own tables, counters, portal links, ...) are internal: never offered to a custom role.
FEATURES: list[tuple[str, list[Right]]] = [
    (
        _("Orders"),
        [
            Right("orders.see", _("See their own orders"), (*ORDER_READING, "sales.view_tax")),
            Right("orders.see_all", _("See every order"), ("sales.view_all_orders",)),
            Right(
                "orders.edit",
                _("Create and edit their own orders"),
                (
                    "sales.add_order",
                    "sales.change_order",
                    "sales.add_orderline",
                    "sales.change_orderline",
                    "sales.delete_orderline",
                ),
            ),
            Right("orders.edit_all", _("Edit every order"), ("sales.change_all_orders",)),
            Right("orders.delete", _("Delete orders"), ("sales.delete_order",)),
        ],
    ),
    (
        _("Contacts"),
        [
            Right("contacts.see", _("See contacts"), ("sales.view_contact",)),
            Right(
                "contacts.edit",
                _("Create and edit contacts"),
                ("sales.add_contact", "sales.change_contact"),
            ),
            Right("contacts.delete", _("Delete contacts"), ("sales.delete_contact",)),
        ],
    ),
    (
        _("Products"),
        [
            Right("products.see", _("See products"), ("sales.view_product", "sales.view_tax")),
            Right(
                "products.edit",
                _("Create and edit products"),
                ("sales.add_product", "sales.change_product"),
            ),
            Right("products.delete", _("Delete products"), ("sales.delete_product",)),
        ],
    ),
    (
        _("Company"),
        [
            Right(
                "company.manage",
                _("Change the company's details and tax table"),
                (
                    "sales.manage_company",
                    "sales.view_tax",
                    "sales.add_tax",
                    "sales.change_tax",
                    "sales.delete_tax",
                ),
            ),
        ],
    ),
    (
        _("Users and security"),
        [
            Right("users.manage", _("Invite, edit and unlock users"), ("accounts.manage_users",)),
            Right("roles.manage", _("Create and edit roles"), ("accounts.manage_roles",)),
            Right(
                "policy.manage",
                _("Change the security policy and sign-in methods"),
                ("accounts.manage_security_policy",),
            ),
            Right("audit.see", _("Read the audit log"), ("audit.view_auditevent",)),
        ],
    ),
    (
        _("Backups"),
        [
            Right(
                "backups.restore",
                _("See the backups and restore one side by side"),
                ("accounts.restore_backups",),
            )
        ],
    ),
    (
        _("Support"),
        [
            Right(
                "support.manage",
                _("Open support tickets and decide on Oxygis staff access"),
                ("accounts.manage_support",),
            )
        ],
    ),
]
RIGHTS = {right.key: right for _feature, rights in FEATURES for right in rights}


def permissions_of_rights(keys) -> set[str]:
    """The permissions for the chosen rights, with the feature's "see" right when another
    of that feature is chosen (editing orders one cannot see means nothing)."""
    labels: set[str] = set()
    for _feature, rights in FEATURES:
        chosen = [right for right in rights if right.key in keys]
        if chosen and rights[0].key.endswith(".see"):
            chosen.append(rights[0])
        for right in chosen:
            labels.update(right.permissions)
    return labels


def rights_held(labels: set[str]) -> list[str]:
    """The keys of the rights whose every permission is in ``labels``."""
    return [key for key, right in RIGHTS.items() if set(right.permissions) <= labels]


def _permissions(using: str, labels: list[str]):
    wanted = {tuple(label.split(".", 1)) for label in labels}
    found = (
        Permission.objects.using(using)
        .filter(
            content_type__app_label__in={app for app, _ in wanted},
            codename__in={code for _, code in wanted},
        )
        .select_related("content_type")
    )
    return [p for p in found if (p.content_type.app_label, p.codename) in wanted]


def _last_admin_app() -> str:
    from django.apps import apps

    return [c.label for c in apps.get_app_configs() if c.label in ADMIN_APPS][-1]


def ensure_builtin_roles(sender=None, using: str = "default", **kwargs) -> None:
    """post_migrate receiver: create or refresh the built-in roles in ``using``, once per
    migrate: after the last of the apps whose permissions they hold (post_migrate comes
    once per app, in INSTALLED_APPS order, each after its permissions are made)."""
    if sender is not None and sender.label != _last_admin_app():
        return
    apply_roles(using)


def apply_roles(using: str) -> None:
    groups = {
        name: Group.objects.using(using).get_or_create(name=name)[0] for name in BUILTIN_ROLES
    }
    groups[ADMINISTRATOR].permissions.set(
        Permission.objects.using(using).filter(content_type__app_label__in=ADMIN_APPS)
    )
    for name, labels in ROLE_PERMISSIONS.items():
        groups[name].permissions.set(_permissions(using, labels))


def parse_role_mapping(text: str, key=str.strip) -> dict[str, str]:
    """'something = role name' lines (a directory group's DN, a value of an identity
    provider's claim) -> {key(something): role name}. Blank lines and # comments are
    skipped; ValueError names the first bad line. The last '=' splits (DNs hold '=')."""
    mapping = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        left, sep, role = line.rpartition("=")
        if not sep or not left.strip() or not role.strip():
            raise ValueError(f"line {number}: write 'group or value = role name'")
        mapping[key(left.strip())] = role.strip()
    return mapping
