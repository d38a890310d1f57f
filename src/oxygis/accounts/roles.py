"""S13 (roles part): the built-in roles, as groups with permissions, in every database.

Built-in roles are defined here in code and re-applied after every migration, so that a
new permission reaches them everywhere; tenant admins add custom roles beside them.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

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
    + ["sales.view_all_orders", "sales.change_all_orders", "sales.view_tax"],
    SALESPERSON: [f"sales.view_{m}" for m in SALES_MODELS]
    + [
        "sales.view_tax",
        "sales.add_order",
        "sales.change_order",
        "sales.add_orderline",
        "sales.change_orderline",
        "sales.delete_orderline",
    ],
    READ_ONLY: [f"sales.view_{m}" for m in SALES_MODELS]
    + ["sales.view_all_orders", "sales.view_tax"],
}
BUILTIN_ROLES = (ADMINISTRATOR, SALES_MANAGER, SALESPERSON, READ_ONLY)


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
