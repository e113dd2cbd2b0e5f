"""Feature extractors and their preprocessing; each has a fingerprint that names exactly what it computes."""
