"""OGC API."""
