"""The cbir HTTP service."""
