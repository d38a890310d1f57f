"""Tenants, their databases, host resolution and the database router (the control plane)."""
