"""The OpenAPI schema, made to tell the truth: FastAPI documents a 422 this service never sends
(validation errors are 400s with an OpenAI error object) and none of the statuses it really
answers. Clients and fuzzers (schemathesis) read this document, so it lists every status each
route can return, each with the error object, and the SSE media type of streamed answers."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

ERROR_REF = "#/components/schemas/ErrorResponse"


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """What every non-2xx answer of the API carries (OpenAI's error shape)."""

    error: ErrorDetail


# Statuses any route can answer before it runs (inference/api/limits.py, errors.py).
ANY_ROUTE = {
    "408": "the request body did not arrive in time",
    "413": "the request body is too large",
    "431": "the request headers are too large",
    "500": "a server bug (the error object says no more)",
}
GENERATION = {
    "400": "invalid request: the message and `param` say what is wrong",
    "404": "the model named in the request is not served here",
    "503": "overloaded or shutting down: retry after `Retry-After` seconds",
    **ANY_ROUTE,
}
ROUTE_ERRORS: dict[str, dict[str, str]] = {
    "/v1/completions": GENERATION,
    "/v1/chat/completions": GENERATION,
    "/ready": {"503": "not ready (loading, engine down, or draining)"},
}
STREAMED = ("/v1/completions", "/v1/chat/completions")
# One server-sent event (schemathesis checks each event of a stream against this).
SSE = {
    "schema": {
        "type": "object",
        "properties": {"data": {"type": "string"}, "event": {"type": "string"}},
        "required": ["data"],
        "description": "with `stream: true`: `data: <chunk JSON>` events, then `data: [DONE]`",
    }
}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _truthful(
                get_openapi(title=app.title, version=app.version, routes=app.routes)
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _truthful(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    components["ErrorDetail"] = ErrorDetail.model_json_schema()
    components["ErrorResponse"] = {
        **ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}"),
    }
    components["ErrorResponse"].pop("$defs", None)
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status, description in ROUTE_ERRORS.get(path, {}).items():
                responses[status] = {
                    "description": description,
                    "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
                }
            if path in STREAMED:
                responses["200"].setdefault("content", {})["text/event-stream"] = SSE
    return schema
