"""Vector tiles."""
