"""Django's PostgreSQL backend with our pooled connections (tenancy/pool.py)."""
