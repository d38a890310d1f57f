"""People of a tenant (or of the platform, in the catalog): users, sign-in."""
