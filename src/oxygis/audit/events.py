"""Record audit events. Never pass secrets in ``details``: they are shown to admins."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.db import router, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import patterns
from .chain import GENESIS, chain_head, link_hash, lock_chain
from .models import AuditEvent

# The actions recorded, with the words the audit page shows (in the reader's language).
ACTIONS = {
    "login.success": _("Signed in"),
    "login.failure": _("Failed sign-in"),
    "login.locked_out": _("Locked out after repeated failures"),
    "login.unlocked": _("Lockout lifted"),
    "logout": _("Signed out"),
    "twofactor.enrolled": _("Two-factor authentication enrolled"),
    "twofactor.removed": _("Two-factor authentication removed"),
    "twofactor.recovery_code_used": _("Recovery code used"),
    "twofactor.recovery_codes_renewed": _("Recovery codes renewed"),
    "twofactor.failure": _("Wrong two-factor code"),
    "passkey.added": _("Passkey added"),
    "passkey.removed": _("Passkey removed"),
    "password.changed": _("Password changed"),
    "password.reset_requested": _("Password reset requested"),
    "password.reset": _("Password reset by link"),
    "password.set_by_operator": _("Password set by the platform operator"),
    "email.changed": _("E-mail address changed"),
    "user.invited": _("User invited"),
    "invitation.accepted": _("Invitation accepted"),
    "user.activated": _("User activated"),
    "user.deactivated": _("User deactivated"),
    "user.roles_changed": _("Roles changed"),
    "role.created": _("Role created"),
    "role.changed": _("Role changed"),
    "session.revoked": _("Session ended"),
    "policy.changed": _("Security policy changed"),
    "directory.configured": _("Directory (LDAP) settings changed"),
    "directory.switched_on": _("Directory sign-in switched on"),
    "directory.switched_off": _("Directory sign-in switched off"),
    "directory.tested": _("Directory settings tried with a user"),
    "directory.user_created": _("User created from the directory"),
    "directory.user_updated": _("User updated from the directory"),
    "directory.user_deactivated": _("User disabled by the directory"),
    "oidc.configured": _("Identity provider (OpenID Connect) settings changed"),
    "oidc.switched_on": _("Identity provider sign-in switched on"),
    "oidc.switched_off": _("Identity provider sign-in switched off"),
    "oidc.tested": _("Identity provider settings tried with a user"),
    "oidc.user_created": _("User created from the identity provider"),
    "oidc.user_updated": _("User updated from the identity provider"),
    "oidc.user_linked": _("Local account taken over by the identity provider's person"),
    "break_glass.kept": _("Local password kept as break-glass access"),
    "break_glass.given_up": _("Break-glass access given up"),
    "access.system": _("System access beyond user rights"),
    "access.refused": _("Refused an existing object"),
    "apikey.created": _("API key created"),
    "apikey.revoked": _("API key revoked"),
    "portal.sent": _("Order sent to the customer"),
    "portal.revoked": _("Customer link revoked"),
    "portal.confirmed": _("Order confirmed by the customer"),
    "portal.declined": _("Order declined by the customer"),
    "company.changed": _("Company details changed"),
    "tax.saved": _("Tax table changed"),
    "backup.restore_requested": _("Restore of a backup requested"),
    "backup.restored_side_by_side": _("Backup restored side by side"),
    "backup.restored_live": _("Backup restored onto the live database"),
    "backup.rolled_back": _("Live restore rolled back"),
    "backup.pruned": _("Backup deleted by the retention policy"),
    # Support (C14): in the tenant's log and in the platform's.
    "support.ticket_opened": _("Support ticket opened"),
    "security.report_received": _("Security report received"),
    "security.report_advanced": _("Security report moved on"),
    "support.ticket_answered": _("Support ticket answered"),
    "support.ticket_closed": _("Support ticket closed"),
    "support.policy_changed": _("Staff access policy changed"),
    "support.grant_requested": _("Staff access requested"),
    "support.grant_approved": _("Staff access approved"),
    "support.grant_denied": _("Staff access denied"),
    "support.grant_revoked": _("Staff access revoked"),
    "support.grant_expired": _("Staff access expired"),
    "support.grant_ended": _("Staff access ended with its ticket"),
    "support.session_started": _("Support staff connected"),
    "support.session_refused": _("Support connection refused"),
    "support.session_ended": _("Support staff left"),
    "support.request": _("Request by support staff"),
    # The platform's own log (the catalog's chain): staff, console, operators.
    "staff.created": _("Staff member created"),
    "staff.role_changed": _("Staff role changed"),
    "staff.disabled": _("Staff member disabled"),
    "staff.enabled": _("Staff member enabled"),
    "tenant.created": _("Tenant created"),
    "tenant.suspended": _("Tenant suspended"),
    "tenant.resumed": _("Tenant resumed"),
    "tenant.plan_changed": _("Tenant plan changed"),
    "tenant.replicas_changed": _("Tenant read replicas changed"),
    "tenant.drop_requested": _("Tenant drop requested"),
    "tenant.drop_cancelled": _("Tenant drop cancelled"),
    "tenant.dropped": _("Tenant dropped"),
    "alert.acknowledged": _("Alert acknowledged"),
    "alert.resolved": _("Alert resolved by hand"),
    "backup.rollback_requested": _("Rollback of a live restore"),
    "operator.command": _("Operator command"),
    "operator.refused": _("Operator command refused"),
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
