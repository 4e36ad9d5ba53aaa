"""The `cbir` command line."""
