"""What other apps may follow of an order's life, without sales importing them.

Both are sent inside the transaction of the change, so that what a receiver writes (the
portal revoking a customer's link) commits or rolls back with it.
"""

from django.dispatch import Signal

# The order was cancelled (by the seller, the API or the customer). Argument: order.
order_cancelled = Signal()
# The order now belongs to another customer. Arguments: order, previous_customer_id.
order_customer_changed = Signal()
