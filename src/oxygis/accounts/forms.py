from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.models import Group, Permission

from .models import SecurityPolicy
from .roles import ADMIN_APPS, BUILTIN_ROLES


class SignInForm(AuthenticationForm):
    username = forms.CharField(
        label="Username or e-mail",
        max_length=254,
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username"}),
    )
    error_messages = {
        # One message whether the user exists or not (no enumeration).
        "invalid_login": "Please enter a correct username and password.",
        "inactive": "Please enter a correct username and password.",
    }


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=20,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True}
        ),
        help_text="The 6-digit code from your authenticator app, or a recovery code.",
    )


class ReauthForm(forms.Form):
    secret = forms.CharField(
        label="Password or 2FA code",
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )


class EmailChangeForm(forms.Form):
    email = forms.EmailField(label="New e-mail address")


class RolesForm(forms.Form):
    """A form with a choice among the roles of the bound database."""

    roles = forms.ModelMultipleChoiceField(
        queryset=Group.objects.none(), widget=forms.CheckboxSelectMultiple, required=False
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["roles"].queryset = Group.objects.order_by("name")


class InviteForm(RolesForm):
    email = forms.EmailField()
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    field_order = ["email", "first_name", "last_name", "roles"]


class UserEditForm(RolesForm):
    is_active = forms.BooleanField(label="Active", required=False)


class RoleForm(forms.ModelForm):
    permissions = forms.ModelMultipleChoiceField(
        queryset=Permission.objects.none(), widget=forms.CheckboxSelectMultiple, required=False
    )

    class Meta:
        model = Group
        fields = ["name", "permissions"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["permissions"].queryset = (
            Permission.objects.filter(content_type__app_label__in=ADMIN_APPS)
            .select_related("content_type")
            .order_by("content_type__app_label", "codename")
        )

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if name in BUILTIN_ROLES and (self.instance.pk is None or self.instance.name != name):
            raise forms.ValidationError("This is the name of a built-in role.")
        return name


class PolicyForm(forms.ModelForm):
    class Meta:
        model = SecurityPolicy
        fields = ["min_password_length", "two_factor", "portal_link_days"]


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What this key is for, e.g. 'ERP sync'.")
    scope = forms.ChoiceField(choices=[("read", "Read only"), ("read-write", "Read and write")])
    days = forms.IntegerField(label="Valid for (days)", min_value=1, max_value=365, initial=90)
