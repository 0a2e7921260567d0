"""Placeholder: filled by the prune technique family."""
