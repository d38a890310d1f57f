"""Base templates, static files, error pages, security.txt and the home pages."""
