"""Contacts, products, quotations and orders."""
