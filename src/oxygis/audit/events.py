"""Record audit events. Never pass secrets in ``details``: they are shown to admins."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.db import router, transaction
from django.utils import timezone

from . import patterns
from .chain import GENESIS, chain_head, link_hash, lock_chain
from .models import AuditEvent

# The actions recorded, with the words the audit page shows.
ACTIONS = {
    "login.success": "Signed in",
    "login.failure": "Failed sign-in",
    "login.locked_out": "Locked out after repeated failures",
    "login.unlocked": "Lockout lifted",
    "logout": "Signed out",
    "twofactor.enrolled": "Two-factor authentication enrolled",
    "twofactor.removed": "Two-factor authentication removed",
    "twofactor.recovery_code_used": "Recovery code used",
    "twofactor.recovery_codes_renewed": "Recovery codes renewed",
    "twofactor.failure": "Wrong two-factor code",
    "passkey.added": "Passkey added",
    "passkey.removed": "Passkey removed",
    "password.changed": "Password changed",
    "password.reset_requested": "Password reset requested",
    "password.reset": "Password reset by link",
    "password.set_by_operator": "Password set by the platform operator",
    "email.changed": "E-mail address changed",
    "user.invited": "User invited",
    "invitation.accepted": "Invitation accepted",
    "user.activated": "User activated",
    "user.deactivated": "User deactivated",
    "user.roles_changed": "Roles changed",
    "role.created": "Role created",
    "role.changed": "Role changed",
    "session.revoked": "Session ended",
    "policy.changed": "Security policy changed",
    "directory.configured": "Directory (LDAP) settings changed",
    "directory.switched_on": "Directory sign-in switched on",
    "directory.switched_off": "Directory sign-in switched off",
    "directory.tested": "Directory settings tried with a user",
    "directory.user_created": "User created from the directory",
    "directory.user_updated": "User updated from the directory",
    "directory.user_deactivated": "User disabled by the directory",
    "oidc.configured": "Identity provider (OpenID Connect) settings changed",
    "oidc.switched_on": "Identity provider sign-in switched on",
    "oidc.switched_off": "Identity provider sign-in switched off",
    "oidc.tested": "Identity provider settings tried with a user",
    "oidc.user_created": "User created from the identity provider",
    "oidc.user_updated": "User updated from the identity provider",
    "oidc.user_linked": "Local account taken over by the identity provider's person",
    "break_glass.kept": "Local password kept as break-glass access",
    "break_glass.given_up": "Break-glass access given up",
    "access.system": "System access beyond user rights",
    "access.refused": "Refused an existing object",
    "apikey.created": "API key created",
    "apikey.revoked": "API key revoked",
    "portal.sent": "Order sent to the customer",
    "portal.revoked": "Customer link revoked",
    "portal.confirmed": "Order confirmed by the customer",
    "portal.declined": "Order declined by the customer",
    "backup.restore_requested": "Restore of a backup requested",
    "backup.restored_side_by_side": "Backup restored side by side",
    "backup.restored_live": "Backup restored onto the live database",
    "backup.rolled_back": "Live restore rolled back",
    "backup.pruned": "Backup deleted by the retention policy",
    # Support (C14): in the tenant's log and in the platform's.
    "support.ticket_opened": "Support ticket opened",
    "security.report_received": "Security report received",
    "security.report_advanced": "Security report moved on",
    "support.ticket_answered": "Support ticket answered",
    "support.ticket_closed": "Support ticket closed",
    "support.policy_changed": "Staff access policy changed",
    "support.grant_requested": "Staff access requested",
    "support.grant_approved": "Staff access approved",
    "support.grant_denied": "Staff access denied",
    "support.grant_revoked": "Staff access revoked",
    "support.grant_expired": "Staff access expired",
    "support.grant_ended": "Staff access ended with its ticket",
    "support.session_started": "Support staff connected",
    "support.session_refused": "Support connection refused",
    "support.session_ended": "Support staff left",
    "support.request": "Request by support staff",
    # The platform's own log (the catalog's chain): staff, console, operators.
    "staff.created": "Staff member created",
    "staff.role_changed": "Staff role changed",
    "staff.disabled": "Staff member disabled",
    "staff.enabled": "Staff member enabled",
    "tenant.created": "Tenant created",
    "tenant.suspended": "Tenant suspended",
    "tenant.resumed": "Tenant resumed",
    "tenant.plan_changed": "Tenant plan changed",
    "tenant.replicas_changed": "Tenant read replicas changed",
    "tenant.drop_requested": "Tenant drop requested",
    "tenant.drop_cancelled": "Tenant drop cancelled",
    "tenant.dropped": "Tenant dropped",
    "alert.acknowledged": "Alert acknowledged",
    "alert.resolved": "Alert resolved by hand",
    "backup.rollback_requested": "Rollback of a live restore",
    "operator.command": "Operator command",
    "operator.refused": "Operator command refused",
}


@dataclass(frozen=True)
class Named:
    """An actor known only by a name in this database: an operator at a shell, or a
    staff member in a tenant's log (their account lives in the catalog, and its id
    would name somebody else here)."""

    name: str
    pk = None

    def get_username(self) -> str:
        return self.name


def record(action: str, *, request=None, actor=None, target: str = "", **details) -> AuditEvent:
    """Append one event to the audit chain of the database in use.

    Call it inside the transaction of the change it records: both commit, or neither.
    The chain is locked until that transaction ends (``chain.lock_chain``), so events
    from concurrent requests take consecutive numbers."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    if actor is None and request is not None:
        user = getattr(request, "user", None)
        actor = user if user is not None and user.is_authenticated else None
    ip = request.META.get("REMOTE_ADDR") if request is not None else None
    alias = router.db_for_write(AuditEvent)
    with transaction.atomic(using=alias):
        lock_chain(alias)
        head = chain_head(alias)
        seq, prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS)
        event = AuditEvent(
            seq=seq,
            at=timezone.now(),
            action=action,
            actor_id=actor.pk if actor is not None else None,
            actor=actor.get_username()[:200] if actor is not None else "",
            target=target[:200],
            # Stored as the database will give it back, so that the hash still matches.
            ip=_IP_FIELD.get_prep_value(ip or None),
            details=json.loads(json.dumps(details)),
            prev_hash=prev_hash,
        )
        event.hash = link_hash(prev_hash, event)
        event.save(using=alias, force_insert=True)
    patterns.observe(event)
    return event


_IP_FIELD = AuditEvent._meta.get_field("ip")
