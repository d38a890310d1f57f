"""Audit events: who did what, when, from where; stored in the database they concern."""
