"""Variantlab's Python client."""
