"""Bearer tokens at the edge: the admin token, compared in constant time, and the API key,
handed to admission's key ring as it came (admission decides what it is worth).

With no admin token configured the admin endpoints do not exist (404, as any unknown path):
an unconfigured service is closed, never open."""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request

_SCHEME = "bearer "


def bearer_token(request: Request) -> str | None:
    """The token of `Authorization: Bearer <token>`, or None."""
    header = request.headers.get("authorization", "")
    if header[: len(_SCHEME)].lower() != _SCHEME:
        return None
    token = header[len(_SCHEME) :].strip()
    return token or None


def token_matches(presented: str | None, expected: str) -> bool:
    """Constant time whatever the presented token's length: digests are compared, not text."""
    if presented is None:
        return False
    ours = hashlib.sha256(expected.encode()).digest()
    theirs = hashlib.sha256(presented.encode()).digest()
    return hmac.compare_digest(ours, theirs)
