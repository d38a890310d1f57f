from django.db import models


class OrderLink(models.Model):
    """The e-mailed link to one order. Only a SHA-256 digest of its random token is kept;
    re-sending replaces it, revoking or cancelling the order ends it."""

    CONFIRMED, DECLINED = "confirmed", "declined"

    order = models.ForeignKey("sales.Order", on_delete=models.CASCADE, related_name="links")
    token_digest = models.CharField(max_length=64, unique=True)
    sent_to = models.EmailField()
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    # The customer's answer: what they typed, when, from where.
    response = models.CharField(
        max_length=10, blank=True, choices=[(CONFIRMED, "Confirmed"), (DECLINED, "Declined")]
    )
    responded_at = models.DateTimeField(null=True, blank=True)
    signer_name = models.CharField(max_length=200, blank=True)
    decline_reason = models.TextField(blank=True, max_length=2000)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"link to order {self.order_id} ({self.sent_to})"


class PortalFailure(models.Model):
    """A link that did not open, by address: to slow down guessing."""

    ip = models.GenericIPAddressField(null=True, blank=True, db_index=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.ip} at {self.at:%Y-%m-%d %H:%M:%S}"
