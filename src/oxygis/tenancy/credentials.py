"""What binds a tenant's credentials to that tenant, outside its own database.

* ``signing_salt(purpose)``: mixed into every signature made for the bound tenant (reset
  and invitation links, customer links). It holds the tenant's id and its ``token_salt``,
  so a link of one tenant never opens another, nor a restored copy of the same one.
* ``note_revoked(kind, subject)``: a catalog record of a credential that stopped being
  valid, so that a restore of an older database can revoke it again (C4).
"""

from __future__ import annotations

from .context import CATALOG, bound_database, bound_tenant, current_tenant
from .models import CredentialEvent


def signing_salt(purpose: str) -> str:
    if bound_database() == CATALOG and bound_tenant() is None:
        # The console's own links (a staff member's invitation or reset): a salt no
        # tenant's can equal, so such a link opens nothing on a tenant host.
        return f"{purpose}:platform-console"
    tenant = current_tenant()
    return f"{purpose}:{tenant.id.hex}:{tenant.token_salt}"


def note_revoked(kind: str, subject) -> None:
    """Record, in the catalog, that ``subject`` (of ``kind``) is no longer valid for the
    bound tenant. Called before the tenant's own write, so that a crash between the two
    errs on the side of revoking again after a restore."""
    if bound_database() == CATALOG:
        return  # platform staff live in the catalog itself: no tenant database to restore
    CredentialEvent.objects.create(
        tenant_id=current_tenant().pk, kind=kind, subject=str(subject)[:100]
    )
