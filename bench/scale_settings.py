"""Benchmark-only settings: Oxygis's, with bench/scale_urls.py's extra bare view."""

import oxygis.settings as _base

globals().update({name: getattr(_base, name) for name in dir(_base) if name.isupper()})
ROOT_URLCONF = "bench.scale_urls"
