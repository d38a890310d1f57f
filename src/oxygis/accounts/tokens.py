"""Single-use links. Both tokens hash the user's password hash and last login, so they
die as soon as a password is set or the user signs in; reset links also expire after
PASSWORD_RESET_TIMEOUT (1 hour), invitations after INVITATION_TIMEOUT (3 days)."""

from django.conf import settings
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.utils.http import base36_to_int


class InvitationTokenGenerator(PasswordResetTokenGenerator):
    key_salt = "oxygis.accounts.tokens.InvitationTokenGenerator"

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
        from django.utils.crypto import constant_time_compare

        return any(
            constant_time_compare(self._make_token_with_timestamp(user, issued, secret), token)
            for secret in [self.secret, *self.secret_fallbacks]
        )


invitation_token_generator = InvitationTokenGenerator()
