from django.db import models


class RateBucket(models.Model):
    """One token bucket of the shared limiter (core/limiter.py), in the catalog.

    ``key`` is a digest of the rate's name and the limited value (an address, an e-mail):
    the catalog keeps no list of who tried what. ``full_at`` is when the bucket will be
    full again, after which the row says nothing and the worker deletes it.
    """

    key = models.CharField(max_length=64, unique=True, editable=False)
    tokens = models.FloatField()
    updated_at = models.DateTimeField()
    full_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.key[:12]}: {self.tokens:.2f}"
