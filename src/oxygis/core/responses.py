"""Answers that say "not now": 503 with Retry-After, as JSON on the API and as a page
elsewhere. Rendered without the request's context processors, so that an answer about
an unreachable database does not itself need the database (sessions, users)."""

from __future__ import annotations

from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string


def unavailable(request, message: str, *, retry_after: int = 5) -> HttpResponse:
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": message}, status=503)
    else:
        page = render_to_string("503.html", {"message": message})
        response = HttpResponse(page, status=503)
    response["Retry-After"] = str(retry_after)
    return response
