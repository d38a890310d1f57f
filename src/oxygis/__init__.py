"""Oxygis: a multi-tenant sales application with one database per customer."""

__version__ = "0.1.0"
