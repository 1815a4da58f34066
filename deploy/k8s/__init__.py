"""Renderers of the manifests under deploy/kubernetes/, one module per concern."""
