"""The customer portal: one order, opened by a signed, single-purpose link sent by e-mail."""
