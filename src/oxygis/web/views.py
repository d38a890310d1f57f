from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET


def home(request):
    people = get_user_model().objects.filter(is_active=True).order_by("username")
    return render(request, "web/home.html", {"people": people})


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


def csrf_failure(request, reason=""):
    """One clear page; the reason is for logs, not for the visitor."""
    return render(request, "403_csrf.html", status=403)
