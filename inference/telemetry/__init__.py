"""Metrics, traces and logs of the service: what is observed, and how it is exported."""
