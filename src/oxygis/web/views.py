from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET


def home(request):
    """The home page: what the person's role lets them follow, read through the access
    layer (a salesperson their own quotations, a manager or read-only role everyone's)."""
    from oxygis.sales.dashboard import dashboard

    people = None
    if request.user.has_perm("accounts.manage_users"):
        people = get_user_model().objects.filter(is_active=True).order_by("username")[:50]
    return render(request, "web/home.html", {"board": dashboard(request.user), "people": people})


# Anonymous by design: the vulnerability-reporting channel must be reachable by anyone.
@login_not_required
@require_GET
def security_txt(request):
    """RFC 9116 security.txt, on every host we serve (S10)."""
    expires = (timezone.now() + timedelta(days=180)).replace(microsecond=0)
    lines = [
        f"Contact: {settings.SECURITY_CONTACT}",
        f"Expires: {expires.strftime('%Y-%m-%dT%H:%M:%SZ')}",
        "Preferred-Languages: en, fr",
        f"Canonical: https://{request.get_host()}/.well-known/security.txt",
        f"Policy: https://{request.get_host()}/.well-known/security-policy",
    ]
    return HttpResponse("\n".join(lines) + "\n", content_type="text/plain; charset=utf-8")


# Anonymous by design: the disclosure policy that security.txt points to.
@login_not_required
@require_GET
def security_policy(request):
    return render(request, "web/security_policy.html")


# Anonymous by design: an unknown API address answers JSON, whoever asks.
@login_not_required
def api_not_found(request, rest=""):
    return JsonResponse({"detail": "Not found."}, status=404)


# Never shown back on the refusal page: credentials, one-time codes and signed tokens.
UNSHOWN_FIELDS = ("csrfmiddlewaretoken", "password", "token", "secret", "otp", "code", "seen")


def permission_denied(request, exception=None):
    """A refused request: one clear page. A refused form keeps what the user typed (shown
    back to copy), so a write the rights did not allow loses nothing; secrets excepted."""
    kept = []
    if request.method == "POST":
        for name, values in request.POST.lists():
            if name == "t" or any(word in name.lower() for word in UNSHOWN_FIELDS):
                continue
            text = "\n".join(v for v in values if v.strip())
            if text:
                kept.append((name, text))
    return render(request, "403.html", {"kept": kept[:50]}, status=403)


def confirm_page(request, *, question: str, button: str, back: str, status: int = 200):
    """Ask before a destructive action: the same POST again, with ``confirmed=yes``."""
    fields = [
        (name, value)
        for name, values in request.POST.lists()
        if name not in ("csrfmiddlewaretoken", "confirmed")
        for value in values
    ]
    context = {"question": question, "button": button, "back": back, "fields": fields}
    return render(request, "web/confirm.html", context, status=status)


def confirmed(request) -> bool:
    return request.POST.get("confirmed") == "yes"


def csrf_failure(request, reason=""):
    """One clear page; the reason is for logs, not for the visitor."""
    return render(request, "403_csrf.html", status=403)
