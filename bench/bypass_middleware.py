"""Benchmark-only: every request acts as the system (no rights, no record rules)."""

from oxygis.access.actors import SystemActor, acting_as

_BENCH = SystemActor("benchmark without the access layer")


class SystemActorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with acting_as(_BENCH):
            return self.get_response(request)
