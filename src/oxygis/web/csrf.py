"""CSRF protection (S4): Django's middleware, with one narrow, reviewed exception.

A page served with ``Referrer-Policy: no-referrer`` (the customer portal, whose URL holds
its link) makes browsers submit its own forms with ``Origin: null`` and no Referer, so
Django's origin check would refuse every answer. Views decorated with ``csrf_token_only`` are
judged by the token alone in that one case: the secret cookie (HttpOnly, SameSite=Strict,
host-only) and the form's token must still match, which a cross-site page cannot do.
"""

from django.middleware.csrf import CsrfViewMiddleware as DjangoCsrfViewMiddleware


def csrf_token_only(view):
    view.csrf_token_only = True
    return view


class CsrfViewMiddleware(DjangoCsrfViewMiddleware):
    def process_view(self, request, callback, callback_args, callback_kwargs):
        request._csrf_token_only = getattr(callback, "csrf_token_only", False)
        return super().process_view(request, callback, callback_args, callback_kwargs)

    def _origin_verified(self, request):
        if request._csrf_token_only and request.META.get("HTTP_ORIGIN") == "null":
            return True
        return super()._origin_verified(request)

    def _check_referer(self, request):
        if request._csrf_token_only and not request.META.get("HTTP_REFERER"):
            return
        super()._check_referer(request)
