"""inferwatch bench."""
