"""Benchmark-only settings: Oxygis's settings with the access layer bypassed.

Used by bench/requests.py to measure what the layer costs. The actor middleware is
replaced by one binding a system actor without writing an audit event per request
(``system()`` would). Never used by the service or the tests.
"""

import oxygis.settings as _base

globals().update({name: getattr(_base, name) for name in dir(_base) if name.isupper()})
MIDDLEWARE = [
    "bench.bypass_middleware.SystemActorMiddleware"
    if entry == "oxygis.access.middleware.ActorMiddleware"
    else entry
    for entry in _base.MIDDLEWARE
]
