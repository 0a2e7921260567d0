"""Placeholder: filled by the distill technique family."""
