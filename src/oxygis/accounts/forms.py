from django import forms
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm, PasswordResetForm
from django.contrib.auth.models import Group, Permission
from django.utils.translation import gettext_lazy as _

from oxygis.audit.events import ACTIONS
from oxygis.core import limiter
from oxygis.core.text import validate_single_line
from oxygis.tenancy.context import bound_tenant
from oxygis.tenancy.hosts import site_url

from .actions import grantable_roles, rights_of, rights_of_roles
from .models import POLICY_MIN_LENGTH, DirectoryConfig, OpenIDConfig, SecurityPolicy, User
from .roles import BUILTIN_ROLES, FEATURES, permissions_of_rights, rights_held
from .sudo import confirm_password


class SignInForm(AuthenticationForm):
    username = forms.CharField(
        label=_("Username or e-mail"),
        max_length=254,
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username"}),
    )
    error_messages = {
        # One message whether the user exists or not (no enumeration).
        "invalid_login": "Please enter a correct username and password.",
        "inactive": "Please enter a correct username and password.",
        "directory_unavailable": "Your company's directory did not answer. Try again in a "
        "few minutes; if it lasts, tell your administrator.",
    }

    def get_invalid_login_error(self):
        if getattr(self.request, "directory_unavailable", False):
            return forms.ValidationError(
                self.error_messages["directory_unavailable"], code="directory_unavailable"
            )
        return super().get_invalid_login_error()


class CodeForm(forms.Form):
    code = forms.CharField(
        label=_("Code"),
        max_length=20,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True}
        ),
        help_text=_("The 6-digit code from your authenticator app, or a recovery code."),
    )


class ReauthForm(forms.Form):
    secret = forms.CharField(
        label=_("Password or 2FA code"),
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )


class PreferencesForm(forms.ModelForm):
    """The person's own language and time zone (blank: the company's)."""

    class Meta:
        model = User
        fields = ["language", "time_zone"]


class EmailChangeForm(forms.Form):
    email = forms.EmailField(label=_("New e-mail address"))


class RolesForm(forms.Form):
    """A choice among the roles of the bound database that ``actor`` may give (S13):
    none holding a right the actor lacks. (The actions check it again.)"""

    roles = forms.ModelMultipleChoiceField(
        queryset=Group.objects.none(), widget=forms.CheckboxSelectMultiple, required=False
    )

    def __init__(self, *args, actor, **kwargs):
        super().__init__(*args, **kwargs)
        allowed = [r.pk for r in grantable_roles(actor)]
        self.fields["roles"].queryset = Group.objects.filter(pk__in=allowed).order_by("name")


class InviteForm(RolesForm):
    email = forms.EmailField()
    first_name = forms.CharField(max_length=150, required=False, validators=[validate_single_line])
    last_name = forms.CharField(max_length=150, required=False, validators=[validate_single_line])
    field_order = ["email", "first_name", "last_name", "roles"]


class UserEditForm(RolesForm):
    is_active = forms.BooleanField(label=_("Active"), required=False)


class RoleForm(forms.ModelForm):
    """A role as rights by feature, in plain words (roles.FEATURES), not Django's table
    of permissions: internal models are never offered."""

    rights = forms.MultipleChoiceField(
        label=_("Rights"),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=_("Any right of a feature includes seeing it."),
    )

    class Meta:
        model = Group
        fields = ["name"]

    def __init__(self, *args, actor, copy_of=None, read_only=False, **kwargs):
        super().__init__(*args, **kwargs)
        held = rights_of_roles([self.instance]) if self.instance.pk else set()
        if copy_of is not None:
            held = rights_of_roles([copy_of])
            self.initial.setdefault("rights", rights_held(held))
        elif self.instance.pk:
            self.initial.setdefault("rights", rights_held(held))
        mine = None if actor.is_superuser or read_only else rights_of(actor)
        choices = []
        for feature, rights in FEATURES:
            # Only rights the editor holds are offered (S13); the action checks it too.
            offered = [
                (right.key, right.label)
                for right in rights
                if mine is None or set(right.permissions) <= mine
            ]
            if offered:
                choices.append((feature, offered))
        self.fields["rights"].choices = choices
        if read_only:
            for field in self.fields.values():
                field.disabled = True

    def clean(self):
        data = super().clean()
        labels = permissions_of_rights(set(data.get("rights") or ()))
        wanted = {tuple(label.split(".", 1)) for label in labels}
        found = Permission.objects.filter(
            content_type__app_label__in={app for app, _codename in wanted},
            codename__in={codename for _app, codename in wanted},
        ).select_related("content_type")
        data["permissions"] = [p for p in found if (p.content_type.app_label, p.codename) in wanted]
        return data

    def save(self, commit=True):
        role = super().save(commit=commit)
        role.permissions.set(self.cleaned_data["permissions"])
        return role

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        validate_single_line(name)
        if name in BUILTIN_ROLES and (self.instance.pk is None or self.instance.name != name):
            raise forms.ValidationError(_("This is the name of a built-in role."))
        return name


class PolicyForm(forms.ModelForm):
    class Meta:
        model = SecurityPolicy
        fields = ["min_password_length", "two_factor", "portal_link_days"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The form offers what the model accepts: never below the platform's minimum.
        length = self.fields["min_password_length"]
        length.min_value, length.max_value = POLICY_MIN_LENGTH, 128
        length.widget.attrs.update(min=POLICY_MIN_LENGTH, max=128)


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text=_("What this key is for, e.g. 'ERP sync'."),
        validators=[validate_single_line],
    )
    scope = forms.ChoiceField(choices=[("read", "Read only"), ("read-write", "Read and write")])
    days = forms.IntegerField(label=_("Valid for (days)"), min_value=1, max_value=365, initial=90)


class OwnPasswordChangeForm(PasswordChangeForm):
    """The current password is checked as a sign-in is: failures count toward the
    account's lockout (S12)."""

    def __init__(self, request, *args, **kwargs):
        self.request = request
        super().__init__(request.user, *args, **kwargs)

    def clean_old_password(self):
        old = self.cleaned_data["old_password"]
        if not confirm_password(self.request, old):
            raise forms.ValidationError(
                self.error_messages["password_incorrect"], code="password_incorrect"
            )
        return old


class ResetRequestForm(PasswordResetForm):
    """Django's reset form, with links to the tenant's canonical address and a budget of
    e-mails per recipient: asking twelve times sends three messages, not twelve (the
    page answers the same either way)."""

    def save(self, **kwargs):
        # Never the request's Host header, which the requester chooses (link poisoning).
        # On the console (staff, bound to the catalog with no tenant), the console's own.
        tenant = bound_tenant()
        slug = tenant.slug if tenant is not None else None
        kwargs["domain_override"] = site_url(slug, "").removeprefix("https://")
        kwargs["use_https"] = True
        return super().save(**kwargs)

    def send_mail(
        self,
        subject_template_name,
        email_template_name,
        context,
        from_email,
        to_email,
        html_email_template_name=None,
    ):
        try:
            tenant = bound_tenant()
            scope = tenant.id.hex if tenant is not None else "console"
            limiter.take(limiter.RESET_MAILS, f"{scope}:{to_email.lower()}")
        except limiter.RateLimited:
            return  # enough links are on their way; say nothing that differs
        super().send_mail(
            subject_template_name,
            email_template_name,
            context,
            from_email,
            to_email,
            html_email_template_name,
        )


class AuditFilterForm(forms.Form):
    """The audit page's filters (C17): who, what, from when to when (UTC days)."""

    actor = forms.CharField(required=False, max_length=150, label=_("By"))
    action = forms.ChoiceField(required=False, label=_("Event"))
    since = forms.DateField(
        required=False, label=_("From"), widget=forms.DateInput({"type": "date"})
    )
    until = forms.DateField(required=False, label=_("To"), widget=forms.DateInput({"type": "date"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = [
            ("", _("Any")),
            *sorted(ACTIONS.items(), key=lambda i: str(i[1])),
        ]

    def filtered(self, events):
        if not self.is_bound or not self.is_valid():
            return events
        data = self.cleaned_data
        if data["actor"]:
            events = events.filter(actor__iexact=data["actor"])
        if data["action"]:
            events = events.filter(action=data["action"])
        if data["since"]:
            events = events.filter(at__date__gte=data["since"])
        if data["until"]:
            events = events.filter(at__date__lte=data["until"])
        return events


def _check_filter(value: str, placeholder: str | None = None) -> None:
    from ldap3.core.exceptions import LDAPInvalidFilterError
    from ldap3.operation.search import parse_filter

    if placeholder and placeholder not in value:
        raise forms.ValidationError(
            _("The filter must contain %(placeholder)s.") % {"placeholder": placeholder}
        )
    try:
        parse_filter(
            value.replace(placeholder or "\0", "x"),
            None,
            auto_escape=False,
            auto_encode=False,
            validator=None,
            check_names=False,
        )
    except LDAPInvalidFilterError:
        raise forms.ValidationError(
            _("This is not an LDAP filter, e.g. (uid={username}).")
        ) from None


def _write_only(form, field: str, sealed: str) -> str:
    """A secret shown never again: empty keeps the sealed one, if there is one."""
    value = form.cleaned_data[field]
    if not value and not sealed:
        raise forms.ValidationError(_("Required: none is stored yet."))
    return value


def _clean_role_mapping(text: str, parse) -> str:
    """A 'something = role' mapping whose roles all exist."""
    try:
        mapping = parse(text)
    except ValueError as exc:
        raise forms.ValidationError(str(exc)) from None
    known = set(Group.objects.filter(name__in=mapping.values()).values_list("name", flat=True))
    unknown = sorted(set(mapping.values()) - known)
    if unknown:
        raise forms.ValidationError(_("No such role: %(roles)s.") % {"roles": ", ".join(unknown)})
    return text.strip()


class DirectoryForm(forms.ModelForm):
    """S7: the directory's settings. The service password is write-only: left empty, the
    sealed one is kept."""

    bind_password = forms.CharField(
        label=_("Service account password"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=_("Stored sealed; leave empty to keep the current one."),
    )

    class Meta:
        model = DirectoryConfig
        fields = [
            "url",
            "ca_certificate",
            "bind_dn",
            "bind_password",
            "user_base",
            "user_filter",
            "username_attribute",
            "active_filter",
            "email_attribute",
            "first_name_attribute",
            "last_name_attribute",
            "group_base",
            "group_filter",
            "role_mapping",
        ]
        widgets = {
            "ca_certificate": forms.Textarea(attrs={"rows": 4}),
            "role_mapping": forms.Textarea(attrs={"rows": 4}),
        }

    def clean_url(self):
        from .directory import check_url

        try:
            check_url(self.cleaned_data["url"])
        except ValueError as exc:
            raise forms.ValidationError(
                _("%(problem)s (plain LDAP is never used).") % {"problem": exc}
            ) from None
        return self.cleaned_data["url"].strip()

    def clean_ca_certificate(self):
        from cryptography import x509

        pem = self.cleaned_data["ca_certificate"].strip()
        if pem:
            try:
                x509.load_pem_x509_certificates(pem.encode())
            except ValueError:
                raise forms.ValidationError(_("This is not a PEM certificate.")) from None
        return pem

    def _dn(self, name: str, *, required: bool = True) -> str:
        from .directory import normalize_dn

        value = self.cleaned_data.get(name, "").strip()
        if value or required:
            try:
                normalize_dn(value)
            except ValueError:
                raise forms.ValidationError(
                    _("This is not a DN, e.g. ou=people,dc=example,dc=org.")
                ) from None
        return value

    def clean_bind_dn(self):
        return self._dn("bind_dn")

    def clean_user_base(self):
        return self._dn("user_base")

    def clean_group_base(self):
        return self._dn("group_base", required=False)

    def clean_user_filter(self):
        value = self.cleaned_data["user_filter"].strip()
        _check_filter(value, "{username}")
        return value

    def clean_active_filter(self):
        value = self.cleaned_data["active_filter"].strip()
        if value:
            _check_filter(value)
        return value

    def clean_group_filter(self):
        value = self.cleaned_data["group_filter"].strip()
        _check_filter(value, "{user_dn}")
        return value

    def clean_bind_password(self):
        return _write_only(self, "bind_password", self.instance.bind_password_sealed)

    def clean_role_mapping(self):
        from .directory import parse_role_mapping

        return _clean_role_mapping(self.cleaned_data["role_mapping"], parse_role_mapping)


class DirectoryTryForm(forms.Form):
    username = forms.CharField(max_length=254, validators=[validate_single_line])
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        help_text=_(
            "Optional: without it, the page shows what the directory says of this "
            "person, without checking a password."
        ),
    )


class OpenIDForm(forms.ModelForm):
    """S7: the identity provider's settings. The client secret is write-only."""

    client_secret = forms.CharField(
        label=_("Client secret"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=_("Stored sealed; leave empty to keep the current one."),
    )

    class Meta:
        model = OpenIDConfig
        fields = [
            "label",
            "issuer",
            "client_id",
            "client_secret",
            "scopes",
            "username_claim",
            "roles_claim",
            "role_mapping",
            "two_factor",
            "accepted_amr",
            "accepted_acr",
            "passwords_off",
        ]
        widgets = {"role_mapping": forms.Textarea(attrs={"rows": 4})}

    def clean_issuer(self):
        from .oidc import check_issuer

        try:
            return check_issuer(self.cleaned_data["issuer"])
        except ValueError as exc:
            raise forms.ValidationError(f"{str(exc).capitalize()}.") from None

    def clean_scopes(self):
        scopes = self.cleaned_data["scopes"].split()
        if "openid" not in scopes:
            raise forms.ValidationError(_("The scopes must include openid."))
        return " ".join(scopes)

    def clean_client_secret(self):
        return _write_only(self, "client_secret", self.instance.client_secret_sealed)

    def clean_role_mapping(self):
        from .roles import parse_role_mapping

        return _clean_role_mapping(self.cleaned_data["role_mapping"], parse_role_mapping)
