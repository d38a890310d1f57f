from django.db import models

from oxygis.core.text import validate_single_line


class OrderLink(models.Model):
    """The e-mailed link to one order, for the customer it was sent to. Only a SHA-256
    digest of its random token is kept; re-sending replaces it; revoking, cancelling the
    order or giving it to another customer ends it."""

    CONFIRMED, DECLINED = "confirmed", "declined"

    order = models.ForeignKey("sales.Order", on_delete=models.CASCADE, related_name="links")
    # The customer the link was sent to: it answers for that customer only (S9).
    customer = models.ForeignKey(
        "sales.Contact", null=True, on_delete=models.CASCADE, related_name="+"
    )
    token_digest = models.CharField(max_length=64, unique=True, editable=False)
    sent_to = models.EmailField()
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    # The customer's answer: what they typed, when, from where.
    response = models.CharField(
        max_length=10, blank=True, choices=[(CONFIRMED, "Confirmed"), (DECLINED, "Declined")]
    )
    responded_at = models.DateTimeField(null=True, blank=True)
    signer_name = models.CharField(max_length=200, blank=True, validators=[validate_single_line])
    decline_reason = models.TextField(blank=True, max_length=2000)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True, editable=False)
    # S9: the revision e-mailed, and what the answer was given to: the revision, the
    # SHA-256 of the document shown (its PDF) and its totals, so the seller can prove
    # what was accepted.
    revision_sent = models.PositiveIntegerField(null=True, editable=False)
    # The last revision its customer opened: the order's history notes each one once.
    opened_revision = models.PositiveIntegerField(default=0, editable=False)
    answer_revision = models.PositiveIntegerField(null=True, editable=False)
    answer_digest = models.CharField(max_length=64, blank=True, editable=False)
    answer_untaxed = models.DecimalField(max_digits=14, decimal_places=2, null=True, editable=False)
    answer_tax = models.DecimalField(max_digits=14, decimal_places=2, null=True, editable=False)
    answer_total = models.DecimalField(max_digits=14, decimal_places=2, null=True, editable=False)
    answer_currency = models.CharField(max_length=3, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"link to order {self.order_id} ({self.sent_to})"
