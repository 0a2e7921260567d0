"""Placeholder: filled by the lowrank technique family."""
