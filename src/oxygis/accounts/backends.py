"""Sign-in by username or e-mail (case-insensitive), with one answer for 'no such user'
and 'wrong password' and comparable timing."""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db.models import Q


class UsernameOrEmailBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None or password is None:
            return None
        User = get_user_model()
        identifier = username.strip()
        match = Q(username__iexact=identifier)
        if "@" in identifier:
            match |= Q(email__iexact=identifier)
        users = list(User._default_manager.filter(match)[:2])
        if len(users) != 1:
            # Run the hasher anyway so that an unknown name costs what a wrong password
            # costs (no user enumeration by timing).
            User().set_password(password)
            return None
        user = users[0]
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None
