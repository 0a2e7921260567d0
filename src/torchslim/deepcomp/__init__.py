"""Placeholder: filled by the deepcomp technique family."""
