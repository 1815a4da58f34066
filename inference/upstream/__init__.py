"""Serving through OpenAI-compatible upstreams (vLLM replicas) behind the `Backend` contract.

Imports only the contract (inference/backend.py) and telemetry, never the API or the engine:
`inference/service.py` hands it the tokenizer it loads from the same files the upstream serves.
"""

from inference.upstream.backend import BACKEND_NAME, ModelInfo, UpstreamBackend, discover_model
from inference.upstream.config import UpstreamConfig

__all__ = ["BACKEND_NAME", "ModelInfo", "UpstreamBackend", "UpstreamConfig", "discover_model"]
