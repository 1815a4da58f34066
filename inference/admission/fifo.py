"""The baseline the controller is measured against: one first-come-first-served queue whose
bound is the only protection (what vLLM's and SGLang's queue caps do; they ignore priority).
Every request reaches the inner backend as `standard`; metrics still see the client's class."""

from __future__ import annotations

import dataclasses

from inference.admission.delegate import DelegatingBackend
from inference.backend import GenerationRequest, Priority, RequestStream


class FifoGate(DelegatingBackend):
    """Implements `inference.backend.Backend` around `inner`."""

    def generate(self, request: GenerationRequest) -> RequestStream:
        return self.inner.generate(dataclasses.replace(request, priority=Priority.STANDARD))
