"""S7: sign-in through the tenant's OpenID Connect identity provider (Authlib's OAuth 2
client for the code flow with PKCE; joserfc, Authlib's JOSE library, for the ID token).

The flow, and what each check stops:
* ``start``: a fresh ``state`` (login CSRF: a callback not started by this browser
  session is refused), ``nonce`` (a replayed ID token is refused) and PKCE verifier
  (S256: a code stolen from the redirect, or injected into another session, cannot be
  exchanged), kept in the session, one use;
* ``finish``: the state must match (constant-time) and is spent before anything else;
  the code is exchanged server to server (client secret, verifier); the ID token must be
  signed by a key of the issuer's JWKS with an asymmetric algorithm (never ``none``, never
  HMAC: the public key is no secret), name the configured issuer and this client as its
  audience, be unexpired, and carry the nonce;
* the person is matched on ``<issuer> <sub>`` only (an e-mail claim can be set by anyone
  able to edit their profile at some IdPs); an existing local account is taken over only
  by a verified e-mail, once; the roles come from the roles claim.

Discovery (``/.well-known/openid-configuration``) must name exactly the configured
issuer. Every request to the provider has a timeout. In production the provider must be
on https and not on a loopback, link-local or private address (the server would otherwise
fetch what the tenant administrator points it at: SSRF).
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext as _
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from oxygis.tenancy.sealing import seal

from .external import open_secret, save_person, snapshot
from .models import OpenIDConfig
from .roles import parse_role_mapping

log = logging.getLogger("oxygis.accounts.oidc")

PENDING = "oxygis_oidc_pending"  # session key: the flow in progress
# Session key of the ID token, for RP-initiated logout.
ID_TOKEN = "oxygis_oidc_id_token"  # noqa: S105 # nosec B105 # a key's name, not a secret
IDP_VERIFIED = "oxygis_idp_mfa"  # session key: the IdP's MFA satisfied our 2FA policy
# Asymmetric only: with HS256 the "secret" would be whatever key the verifier holds, and
# an attacker holding the public JWKS could sign (algorithm confusion).
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]
FLOW_LIFETIME = 600  # seconds from start to callback
CACHE_SECONDS = 600


class OpenIDError(Exception):
    """The provider could not be used (unreachable, bad discovery, bad configuration).
    The message is for administrators and logs."""


class SignInRefused(Exception):
    """The sign-in is refused; the message is for the person."""


def check_issuer(url: str) -> str:
    """The issuer URL, if it is one this server may talk to (see module docstring)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(_("write the issuer's https:// URL"))
    if parts.query or parts.fragment or parts.username:
        raise ValueError(_("the issuer URL has no query, fragment or credentials"))
    production = settings.PRODUCTION
    loopback = _resolves_to(parts.hostname, lambda a: a.is_loopback)
    if parts.scheme == "http" and not (loopback and not production):
        raise ValueError(_("the issuer must use https"))
    if production and _resolves_to(
        parts.hostname, lambda a: a.is_loopback or a.is_link_local or a.is_private
    ):
        raise ValueError(_("the issuer's address is not a public one"))
    return url.strip().rstrip("/")


def _resolves_to(host: str, test) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return any(test(ipaddress.ip_address(info[4][0])) for info in infos)


def client_secret(config: OpenIDConfig) -> str:
    return open_secret(config.client_secret_sealed, _("client secret"), OpenIDError)


def set_client_secret(config: OpenIDConfig, secret: str) -> None:
    config.client_secret_sealed = seal(secret)


# --- the provider's documents, cached per process ------------------------------------------
_cache: dict[str, tuple[float, object]] = {}
_cache_lock = threading.Lock()


def _get_json(url: str) -> dict:
    try:
        response = requests.get(
            url,
            timeout=settings.OIDC_TIMEOUT,
            allow_redirects=False,
            headers={"Accept": "application/json"},
        )
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise OpenIDError(f"{url}: {exc}") from None
    if not isinstance(document, dict):
        raise OpenIDError(_("%(url)s: not a JSON object") % {"url": url})
    return document


def _cached(key: str, fetch, *, refresh: bool = False):
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None and not refresh and now - hit[0] < CACHE_SECONDS:
        return hit[1]
    value = fetch()
    with _cache_lock:
        _cache[key] = (now, value)
    return value


def discover(config: OpenIDConfig, *, refresh: bool = False) -> dict:
    """The provider's metadata; its ``issuer`` must be the configured one (OpenID
    Connect Discovery 4.3: otherwise another provider could speak for it)."""
    try:
        issuer = check_issuer(config.issuer)
    except ValueError as exc:
        raise OpenIDError(_("issuer: %(problem)s") % {"problem": exc}) from None

    def fetch():
        metadata = _get_json(f"{issuer}/.well-known/openid-configuration")
        if metadata.get("issuer", "").rstrip("/") != issuer:
            raise OpenIDError(
                _("the discovery document names the issuer %(named)r, not %(issuer)r")
                % {"named": metadata.get("issuer"), "issuer": issuer}
            )
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not metadata.get(name):
                raise OpenIDError(_("the discovery document has no %(name)s") % {"name": name})
        for name in ("token_endpoint", "jwks_uri", "userinfo_endpoint"):
            # The server fetches these itself: the issuer's rules apply (https, public).
            if metadata.get(name):
                try:
                    check_issuer(str(metadata[name]))
                except ValueError as exc:
                    raise OpenIDError(f"{name}: {exc}") from None
        methods = metadata.get("code_challenge_methods_supported")
        if methods is not None and "S256" not in methods:
            raise OpenIDError(_("the provider does not support PKCE with S256"))
        return metadata

    return _cached(f"discovery {issuer}", fetch, refresh=refresh)


def signing_keys(metadata: dict, *, refresh: bool = False) -> KeySet:
    def fetch():
        try:
            return KeySet.import_key_set(_get_json(metadata["jwks_uri"]))
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise OpenIDError(
                _("the provider's keys cannot be read: %(problem)s") % {"problem": exc}
            ) from None

    return _cached(f"jwks {metadata['jwks_uri']}", fetch, refresh=refresh)


# --- the flow ----------------------------------------------------------------------------
def redirect_uri(request) -> str:
    from oxygis.tenancy.hosts import site_url

    return site_url(request.tenant.slug, "/accounts/oidc/callback/")


def _session(config: OpenIDConfig, request, **kwargs) -> OAuth2Session:
    return OAuth2Session(
        config.client_id,
        client_secret(config),
        scope=config.scopes,
        redirect_uri=redirect_uri(request),
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",  # noqa: S106 # nosec B106 # a method's name
        default_timeout=settings.OIDC_TIMEOUT,
        **kwargs,
    )


def start(
    request, config: OpenIDConfig, *, next_url: str = "/", trial: bool = False, reauth: bool = False
) -> str:
    """The provider's authorization URL for a new flow; the flow's secrets go to the
    session (one flow at a time: a new one replaces the old). A re-authentication or a
    try asks the provider for a fresh sign-in (``prompt=login``), not its session."""
    metadata = discover(config)
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)
    extra = {"prompt": "login"} if (reauth or trial) else {}
    url, _ = _session(config, request).create_authorization_url(
        metadata["authorization_endpoint"],
        state=state,
        nonce=nonce,
        code_verifier=verifier,
        **extra,
    )
    request.session[PENDING] = {
        "state": state,
        "nonce": nonce,
        "verifier": verifier,
        "next": next_url,
        "trial": trial,
        "reauth": reauth,
        "at": int(time.time()),
    }
    return url


@dataclass
class Outcome:
    """What the callback found: the claims, and what they mean here."""

    claims: dict
    username: str = ""
    email: str = ""
    roles: list[str] = field(default_factory=list)
    idp_mfa: bool = False
    trial: bool = False
    reauth: bool = False
    next_url: str = "/"
    id_token: str = ""


def finish(request, config: OpenIDConfig) -> Outcome:
    """Check the callback and the provider's answer (see the module docstring)."""
    pending = request.session.pop(PENDING, None)  # spent now, whatever happens next
    params = request.GET
    if not pending or not constant_time_compare(params.get("state", ""), pending["state"]):
        raise SignInRefused(
            _("This sign-in was not started here, or was already used. Start again.")
        )
    if time.time() - pending["at"] > FLOW_LIFETIME:
        raise SignInRefused(_("This sign-in took too long. Start again."))
    if params.get("error"):
        log.info(
            "identity provider said %s: %s",
            params.get("error"),
            params.get("error_description", "")[:200],
        )
        raise SignInRefused(_("Your identity provider did not sign you in."))
    metadata = discover(config)
    if params.get("iss") and params["iss"].rstrip("/") != metadata["issuer"].rstrip("/"):
        raise SignInRefused(_("This answer comes from another identity provider."))  # RFC 9207
    code = params.get("code", "")
    if not code:
        raise SignInRefused(_("Your identity provider sent no authorization code."))
    try:
        token = _session(config, request).fetch_token(
            metadata["token_endpoint"],
            grant_type="authorization_code",
            code=code,
            code_verifier=pending["verifier"],
        )
    except Exception as exc:  # Authlib raises OAuthError, requests its own: all refusals
        log.warning("code exchange refused: %s", str(exc)[:300])
        raise SignInRefused(
            _("Your identity provider refused this sign-in. Start again.")
        ) from None
    id_token = token.get("id_token")
    if not id_token:
        raise SignInRefused(_("Your identity provider sent no ID token."))
    claims = verify_id_token(config, metadata, id_token, nonce=pending["nonce"])
    claims = {**_userinfo(metadata, token, claims["sub"]), **claims}
    outcome = Outcome(
        claims=claims,
        trial=pending.get("trial", False),
        reauth=pending.get("reauth", False),
        next_url=pending.get("next", "/"),
        id_token=id_token,
    )
    outcome.username = (
        str(claims.get(config.username_claim) or claims.get("email") or "").strip().lower()[:150]
    )
    outcome.email = str(claims.get("email") or "").strip().lower()[:254]
    values = claims.get(config.roles_claim) or []
    values = (
        [values]
        if isinstance(values, str)
        else [str(v) for v in values if isinstance(v, (str, int))]
    )
    mapping = parse_role_mapping(config.role_mapping)
    outcome.roles = sorted({mapping[v] for v in values if v in mapping})
    outcome.idp_mfa = idp_mfa_satisfied(config, claims)
    return outcome


def verify_id_token(config: OpenIDConfig, metadata: dict, id_token: str, *, nonce: str) -> dict:
    """The ID token's claims if it is the provider's, for this client, current and for
    this flow; SignInRefused otherwise (each refusal logged with its reason)."""
    try:
        try:
            token = jwt.decode(id_token, signing_keys(metadata), algorithms=ALGORITHMS)
        except JoseError:
            # Perhaps the provider rotated its keys since we fetched them: once more.
            token = jwt.decode(
                id_token, signing_keys(metadata, refresh=True), algorithms=ALGORITHMS
            )
        jwt.JWTClaimsRegistry(
            leeway=60,
            iss={"essential": True, "value": metadata["issuer"]},
            aud={"essential": True, "value": config.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        ).validate(token.claims)
    except (JoseError, ValueError) as exc:
        log.warning("ID token refused: %s", exc)
        raise SignInRefused(_("Your identity provider's answer could not be verified.")) from None
    claims = token.claims
    audience = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audience) > 1 and claims.get("azp") != config.client_id:
        log.warning("ID token refused: several audiences and azp %r", claims.get("azp"))
        raise SignInRefused(_("Your identity provider's answer could not be verified."))
    return dict(claims)


def _userinfo(metadata: dict, token: dict, sub: str) -> dict:
    """The userinfo claims (names, e-mail, groups a provider keeps out of the ID token);
    ignored when they are about someone else."""
    endpoint = metadata.get("userinfo_endpoint")
    if not endpoint or not token.get("access_token"):
        return {}
    try:
        response = requests.get(
            endpoint,
            headers={
                "Authorization": f"Bearer {token['access_token']}",
                "Accept": "application/json",
            },
            timeout=settings.OIDC_TIMEOUT,
            allow_redirects=False,
        )
        response.raise_for_status()
        info = response.json()
    except (requests.RequestException, ValueError) as exc:
        log.warning("userinfo not read: %s", exc)
        return {}
    if not isinstance(info, dict) or info.get("sub") != sub:
        return {}
    # amr and acr only count from the signed ID token.
    return {k: v for k, v in info.items() if k not in ("amr", "acr", "iss", "aud", "nonce")}


def idp_mfa_satisfied(config: OpenIDConfig, claims: dict) -> bool:
    """Does this sign-in count as two-factor (S12), by the tenant's choice?"""
    if config.two_factor != config.TWO_FACTOR_IDP:
        return False
    amr = claims.get("amr") or []
    amr = [amr] if isinstance(amr, str) else amr
    if set(config.accepted_amr.split()) & {str(v) for v in amr}:
        return True
    return bool(claims.get("acr")) and str(claims["acr"]) in config.accepted_acr.split()


def provision(config: OpenIDConfig, outcome: Outcome):
    """The local user of this person (by issuer and subject), created or updated just in
    time with exactly the mapped roles; SignInRefused when they may not come in."""
    User = get_user_model()
    users = User._default_manager
    external_id = f"{config.issuer.rstrip('/')} {outcome.claims['sub']}"[:500]
    if not outcome.roles:
        raise SignInRefused(
            _("Your account has no role in this workspace. Ask your administrator.")
        )
    user = users.filter(source=User.OPENID, external_id=external_id).first()
    linked = False
    if user is None and outcome.email and outcome.claims.get("email_verified") is True:
        # A local account with this verified e-mail becomes this person's, once.
        user = users.filter(email__iexact=outcome.email, source=User.LOCAL).first()
        linked = user is not None
    if user is None:
        if not outcome.username:
            raise SignInRefused(_("Your identity provider gave no username."))
        if users.filter(username__iexact=outcome.username).exists():
            raise SignInRefused(
                _("Another account here already has your username. Ask your administrator.")
            )
        user = User(username=outcome.username)
    elif not user.is_active:
        raise SignInRefused(_("Your account here is disabled."))
    before = snapshot(user)
    user.source, user.external_id = User.OPENID, external_id
    if outcome.email:
        user.email = outcome.email
    user.first_name = str(outcome.claims.get("given_name") or user.first_name)[:150]
    user.last_name = str(outcome.claims.get("family_name") or user.last_name)[:150]
    try:
        return save_person(
            user, kind="oidc", roles=outcome.roles, before=before, linked=linked, sub=external_id
        )
    except IntegrityError:
        raise SignInRefused(
            _("Your e-mail address belongs to another account here. Ask your administrator.")
        ) from None


def logout_url(request, config: OpenIDConfig, id_token: str) -> str | None:
    """RP-initiated logout: the provider's end-session URL, back to our sign-in page."""
    from oxygis.tenancy.hosts import site_url

    try:
        endpoint = discover(config).get("end_session_endpoint")
    except OpenIDError as exc:
        log.warning("no RP-initiated logout: %s", exc)
        return None
    if not endpoint:
        return None
    query = urlencode(
        {
            "id_token_hint": id_token,
            "client_id": config.client_id,
            "post_logout_redirect_uri": site_url(request.tenant.slug, "/accounts/login/"),
        }
    )
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


# --- the settings page's check --------------------------------------------------------------
def check_configuration(config: OpenIDConfig) -> list[tuple[str, bool, str]]:
    """Discovery, keys and the client secret, as (step, ok, detail) rows."""
    steps = []
    try:
        metadata = discover(config, refresh=True)
        steps.append(("Discovery", True, f"issuer {metadata['issuer']}"))
        keys = signing_keys(metadata, refresh=True)
        steps.append(("Signing keys", True, f"{len(keys.keys)} key(s) at {metadata['jwks_uri']}"))
        client_secret(config)
        steps.append(("Client secret", True, "set"))
    except OpenIDError as exc:
        steps.append(("Provider", False, str(exc)))
    return steps
