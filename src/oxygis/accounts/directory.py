"""S7: sign-in through the tenant's own LDAP / Active Directory (ldap3).

What a directory sign-in does, each time:
1. connect over TLS only (``ldaps://``, or StartTLS on ``ldap://``; the certificate is
   checked against the configured or the system authorities, and the host name), with
   timeouts (``DIRECTORY_TIMEOUT``) so that a dead or frozen directory costs a worker
   seconds, never hangs it;
2. bind as the service account, find the one entry the user filter names;
3. read whether the entry still matches the active filter: a disabled account disables
   the local user too, whatever password was typed;
4. bind as that entry with the typed password (never with an empty one: LDAP would take
   it as an anonymous bind and say yes);
5. map the entry's groups to roles; a person in no mapped group is refused.

The local user is created or updated from the entry (just in time), holds no password,
and gets exactly the mapped roles. Threats: a man in the middle reading passwords (TLS
only, verified), LDAP filter injection through the username (escaped), an anonymous bind
taken for a good password, a directory outage blocking workers (timeouts), a person the
directory removed or disabled keeping access (checked at each sign-in).
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import ldap3
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

from oxygis.audit.events import record
from oxygis.tenancy.credentials import note_revoked
from oxygis.tenancy.models import CredentialEvent
from oxygis.tenancy.sealing import seal

from .external import open_secret, save_person, snapshot
from .models import DirectoryConfig
from .roles import parse_role_mapping as parse_mapping

log = logging.getLogger("oxygis.accounts.directory")


class DirectoryError(Exception):
    """The directory could not be asked (unreachable, TLS, service account refused, bad
    configuration). The message is for administrators; users see a generic line."""


def normalize_dn(dn: str) -> str:
    """A DN in one spelling, to compare: 'CN=Sales, OU=Groups' is 'cn=sales,ou=groups'."""
    try:
        return ",".join(
            f"{attr.strip().lower()}={value.strip().lower()}" for attr, value, _sep in parse_dn(dn)
        )
    except LDAPException as exc:
        raise ValueError(_("%(dn)r is not a DN") % {"dn": dn}) from exc


def parse_role_mapping(text: str) -> dict[str, str]:
    """'group DN = role name' lines -> {normalized DN: role name}."""
    return parse_mapping(text, key=normalize_dn)


def check_url(url: str) -> tuple[str, int, bool]:
    """(host, port, ldaps) of a directory URL; only ldaps:// and ldap:// (StartTLS)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("ldaps", "ldap") or not parts.hostname:
        raise ValueError(_("write ldaps://host:636 or ldap://host:389"))
    if parts.path not in ("", "/") or parts.query or parts.username:
        raise ValueError(_("the URL names only a host and a port"))
    try:
        port = parts.port or (636 if parts.scheme == "ldaps" else 389)
    except ValueError:
        raise ValueError(_("the port is not a number")) from None
    return parts.hostname, port, parts.scheme == "ldaps"


def bind_password(config: DirectoryConfig) -> str:
    return open_secret(config.bind_password_sealed, _("service account's password"), DirectoryError)


def set_bind_password(config: DirectoryConfig, password: str) -> None:
    config.bind_password_sealed = seal(password)


@dataclass
class Person:
    """One directory entry, as the sign-in reads it."""

    dn: str
    username: str
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    active: bool = True
    groups: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)


def _first(entry, attribute: str) -> str:
    if not attribute or attribute not in entry["attributes"]:
        return ""
    value = entry["attributes"][attribute]
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value).strip()[:150]


class Directory:
    """A conversation with one tenant's directory. Use as a context manager."""

    def __init__(self, config: DirectoryConfig, *, timeout: float | None = None):
        self.config = config
        self.timeout = timeout or settings.DIRECTORY_TIMEOUT
        try:
            host, port, self.ldaps = check_url(config.url)
        except ValueError as exc:
            raise DirectoryError(_("server URL: %(problem)s") % {"problem": exc}) from None
        tls = ldap3.Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_data=config.ca_certificate.strip() or None,
            sni=host,
        )
        self.server = ldap3.Server(
            host,
            port=port,
            use_ssl=self.ldaps,
            tls=tls,
            connect_timeout=self.timeout,
            get_info=ldap3.NONE,
        )
        self.service = None

    def __enter__(self):
        self.service = self._bind(self.config.bind_dn, bind_password(self.config), service=True)
        return self

    def __exit__(self, *exc):
        if self.service is not None:
            _close(self.service)

    def _connection(self, user: str, password: str):
        return ldap3.Connection(
            self.server,
            user=user,
            password=password,
            receive_timeout=self.timeout,
            read_only=True,
            auto_referrals=False,  # a referral must not send the password elsewhere
            raise_exceptions=False,
        )

    def _bind(self, dn: str, password: str, *, service: bool = False):
        """An open, TLS-protected connection bound as ``dn``; None when the directory
        refuses that password (DirectoryError when it refuses the service account or
        cannot be reached)."""
        if not password:
            # An empty password is an unauthenticated bind, which succeeds (RFC 4513 5.1.2).
            if service:
                raise DirectoryError(_("no password is set for the service account"))
            return None
        conn = self._connection(dn, password)
        try:
            conn.open()
            if not self.ldaps and not conn.start_tls():
                raise DirectoryError(
                    _("StartTLS refused: %(why)s") % {"why": conn.result.get("description")}
                )
            if conn.bind():
                return conn
            description = conn.result.get("description", "")
        except LDAPException as exc:
            raise DirectoryError(_describe(exc)) from None
        except (OSError, ssl.SSLError) as exc:
            raise DirectoryError(_("connection failed: %(problem)s") % {"problem": exc}) from None
        finally:
            if not conn.bound:
                _close(conn)
        if service:
            raise DirectoryError(
                _("the service account was refused (%(why)s)") % {"why": description}
            )
        if description != "invalidCredentials":
            raise DirectoryError(
                _("the directory refused the sign-in (%(why)s)") % {"why": description}
            )
        return None

    def _search(self, base: str, search_filter: str, attributes, scope=ldap3.SUBTREE):
        try:
            ok = self.service.search(
                base,
                search_filter,
                search_scope=scope,
                attributes=attributes,
                size_limit=100,
                time_limit=int(self.timeout),
            )
        except LDAPException as exc:
            raise DirectoryError(_describe(exc)) from None
        description = self.service.result.get("description", "")
        if not ok and description not in ("success", "noSuchObject"):
            raise DirectoryError(
                _("search under %(base)r failed (%(why)s)") % {"base": base, "why": description}
            )
        return [e for e in self.service.response or [] if e.get("type") == "searchResEntry"]

    def find(self, username: str) -> Person | None:
        """The one entry the user filter names, or None (none, or more than one)."""
        config = self.config
        username = username.strip()
        if not username:
            return None
        search_filter = config.user_filter.replace("{username}", escape_filter_chars(username))
        attributes = [
            a
            for a in (
                config.username_attribute,
                config.email_attribute,
                config.first_name_attribute,
                config.last_name_attribute,
            )
            if a
        ]
        entries = self._search(config.user_base, search_filter, attributes)
        if len(entries) != 1:
            return None
        entry = entries[0]
        person = Person(
            dn=entry["dn"],
            username=_first(entry, config.username_attribute).lower(),
            email=_first(entry, config.email_attribute).lower(),
            first_name=_first(entry, config.first_name_attribute),
            last_name=_first(entry, config.last_name_attribute),
        )
        if not person.username:
            raise DirectoryError(
                _("%(dn)s has no %(attribute)r attribute")
                % {"dn": person.dn, "attribute": config.username_attribute}
            )
        if config.active_filter.strip():
            person.active = bool(
                self._search(person.dn, config.active_filter.strip(), [], scope=ldap3.BASE)
            )
        if config.group_base.strip():
            group_filter = config.group_filter.replace("{user_dn}", escape_filter_chars(person.dn))
            person.groups = [e["dn"] for e in self._search(config.group_base, group_filter, [])]
        mapping = parse_role_mapping(config.role_mapping)
        person.roles = sorted(
            {mapping[normalize_dn(g)] for g in person.groups if normalize_dn(g) in mapping}
        )
        return person

    def check_password(self, person: Person, password: str) -> bool:
        conn = self._bind(person.dn, password)
        if conn is None:
            return False
        _close(conn)
        return True


def _close(conn) -> None:
    """Unbind, or just drop a connection whose socket already failed."""
    with contextlib.suppress(LDAPException, OSError):
        conn.unbind()


def _describe(exc: LDAPException) -> str:
    text = str(exc) or type(exc).__name__
    if "timed out" in text or "timeout" in text.lower():
        return "the directory did not answer in time"
    return f"the directory could not be reached: {text}"


# --- sign-in ---------------------------------------------------------------------------
def authenticate(config: DirectoryConfig, username: str, password: str):
    """The local user for ``username`` if the directory accepts ``password``, else None.
    Raises DirectoryError when the directory could not be asked."""
    with Directory(config) as directory:
        person = directory.find(username)
        if person is None:
            return None
        if not person.active:
            deactivate(person, reason="disabled in the directory")
            return None
        if not directory.check_password(person, password):
            return None
    if not person.roles:
        log.info("directory sign-in refused: %s is in no mapped group", person.dn)
        return None
    return provision(person)


def _find_local(person: Person):
    users = get_user_model()._default_manager
    return (
        users.filter(source=get_user_model().DIRECTORY, external_id=person.dn).first()
        or users.filter(username__iexact=person.username).first()
    )


def deactivate(person: Person, *, reason: str) -> None:
    """A person the directory disabled: their local user is disabled too, their sessions
    end (checked at each sign-in attempt, S7)."""
    from .sessions import end_other_sessions

    user = _find_local(person)
    if user is None or not user.is_active or user.source != user.DIRECTORY:
        return
    note_revoked(CredentialEvent.USER_DEACTIVATED, user.pk)  # a restore keeps it disabled
    with transaction.atomic(using=user._state.db):
        user.is_active, user.disabled_by_directory = False, True
        user.save(update_fields=["is_active", "disabled_by_directory"])
        end_other_sessions(user)
        record("directory.user_deactivated", actor=None, target=user.get_username(), reason=reason)


def provision(person: Person):
    """Create or update the local user from the directory entry (just in time): names,
    e-mail, active again if the directory had disabled them, exactly the mapped roles, no
    local password. None when an administrator disabled the user here, or when the e-mail
    address is another account's (two people are never merged)."""
    User = get_user_model()
    user = _find_local(person) or User(username=person.username)
    if user.pk and not user.is_active:
        if not user.disabled_by_directory:
            return None  # an administrator disabled them here: that holds
        note_revoked(CredentialEvent.USER_REACTIVATED, user.pk)
    before = snapshot(user)
    user.source, user.external_id = User.DIRECTORY, person.dn
    user.email, user.first_name, user.last_name = person.email, person.first_name, person.last_name
    user.is_active, user.disabled_by_directory = True, False
    try:
        return save_person(user, kind="directory", roles=person.roles, before=before, dn=person.dn)
    except IntegrityError:
        log.warning("directory sign-in refused: %s's e-mail belongs to another user", person.dn)
        return None


# --- the settings page's "try it" -------------------------------------------------------
@dataclass
class Step:
    label: str
    ok: bool
    detail: str = ""


def try_configuration(config: DirectoryConfig, username: str, password: str) -> list[Step]:
    """Run a sign-in's steps with ``username`` (and ``password`` if given) and say what
    each found, without creating or changing any user."""
    steps: list[Step] = []
    try:
        with Directory(config) as directory:
            steps.append(
                Step(
                    "Connection and service account",
                    True,
                    f"{'LDAPS' if directory.ldaps else 'StartTLS'}, bound as {config.bind_dn}",
                )
            )
            person = directory.find(username)
            if person is None:
                steps.append(Step("User search", False, "no entry, or more than one, matches"))
                return steps
            steps.append(
                Step(
                    "User search",
                    True,
                    f"{person.dn}: username {person.username}, e-mail "
                    f"{person.email or '(none)'}, name {person.first_name} {person.last_name}",
                )
            )
            steps.append(
                Step(
                    "Account active",
                    person.active,
                    "yes" if person.active else "no: this person would be disabled here",
                )
            )
            steps.append(
                Step(
                    "Groups and roles",
                    bool(person.roles),
                    f"groups: {', '.join(person.groups) or 'none'}; roles: "
                    f"{', '.join(person.roles) or 'none (this person could not sign in)'}",
                )
            )
            if password:
                right = directory.check_password(person, password)
                steps.append(
                    Step("Password", right, "accepted" if right else "refused by the directory")
                )
    except (DirectoryError, ValueError) as exc:
        steps.append(Step("Directory", False, str(exc)))
    return steps
