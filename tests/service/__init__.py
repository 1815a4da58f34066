"""API tests: the real engine behind the real app, over real HTTP on loopback."""
