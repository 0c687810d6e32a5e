"""Stigmer."""
