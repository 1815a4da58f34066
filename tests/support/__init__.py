"""Helpers shared by the test folders (never imported from a conftest)."""
