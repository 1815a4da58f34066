"""Deployment artefacts rendered from one set of facts: the Prometheus configuration for local,
compose and Kubernetes, the top-level docker-compose.yml and the kustomize tree in
deploy/kubernetes/. Only commands and tests import this package."""
