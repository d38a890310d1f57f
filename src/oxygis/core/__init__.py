"""Small helpers at the bottom of the layers: the shared rate limiter, single-line text,
e-mail, URL converters. Imports no other Oxygis app."""
