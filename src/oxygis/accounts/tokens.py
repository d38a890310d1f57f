"""Single-use links. Both tokens hash the user's password hash and last login, so they
die as soon as a password is set or the user signs in; reset links also expire after
PASSWORD_RESET_TIMEOUT (1 hour), invitations after INVITATION_TIMEOUT (3 days).

Both are salted with the tenant (tenancy/credentials.py): a link made for a user of one
tenant opens nothing on another tenant that has a user with the same id, nor on a
restored copy of its own tenant, nor after a live restore (C4, C9).
"""

from django.conf import settings
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.utils.crypto import constant_time_compare
from django.utils.http import base36_to_int

from oxygis.tenancy.credentials import signing_salt


class TenantTokenGenerator(PasswordResetTokenGenerator):
    purpose = "oxygis.accounts.tokens.reset"

    @property
    def key_salt(self) -> str:
        return signing_salt(self.purpose)


class InvitationTokenGenerator(TenantTokenGenerator):
    purpose = "oxygis.accounts.tokens.invitation"

    def check_token(self, user, token):
        if not (user and token) or "-" not in token:
            return False
        try:
            issued = base36_to_int(token.split("-")[0])
        except ValueError:
            return False
        if self._num_seconds(self._now()) - issued > settings.INVITATION_TIMEOUT:
            return False
        # The parent checks the signature (and its own, shorter, expiry): compare the
        # signature ourselves instead, for every secret still accepted.
        return any(
            constant_time_compare(self._make_token_with_timestamp(user, issued, secret), token)
            for secret in [self.secret, *self.secret_fallbacks]
        )


reset_token_generator = TenantTokenGenerator()
invitation_token_generator = InvitationTokenGenerator()
