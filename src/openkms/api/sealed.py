"""The request handler of a sealed server (docs/adr/0002-unseal.md).

While sealed no root key is in memory: no credential secret can be unwrapped (so no SigV4 signature can
be checked), no key material, no audit signing key.  Every request therefore gets the same answer before
authentication: ``KMSInternalException`` (HTTP 500, in every operation's error list, and retryable for
the SDKs, which is right: the condition is temporary) whose message names the sealed state.  The health
endpoint answers 503 with ``"sealed": true`` so a load balancer takes the node out of rotation.  Nothing
reaches the audit log: there is no caller to name and no signing key to chain the record with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from openkms import errors
from openkms.api.http import HttpRequest, HttpResponse
from openkms.api.protocol import JSON_CONTENT_TYPE, error_response, new_request_id

SEALED_MESSAGE = (
    "openkms is sealed: its root key is not available until a quorum of operators unseals it "
    "(openkms operator unseal). Retry later."
)
HEALTH_PATHS = ("/health", "/healthz")


class SealedApi:
    """Answers every request of a sealed worker."""

    def __init__(self, health: Callable[[], dict[str, Any]]) -> None:
        self._health = health

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = new_request_id()
        if request.method == "GET" and request.raw_path in HEALTH_PATHS:
            body = orjson.dumps({"status": "sealed", "sealed": True, **self._health()})
            headers = [("Content-Type", JSON_CONTENT_TYPE), ("x-amzn-RequestId", request_id)]
            return HttpResponse(503, headers, body)
        return error_response(errors.KMSInternalException(SEALED_MESSAGE), request_id)
