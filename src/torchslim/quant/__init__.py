"""Placeholder: filled by the quant technique family."""
