"""The sealed worker's answers: pinned wire form (``__type``, HTTP status, message naming the state)."""

from __future__ import annotations

import orjson

from openkms.api.http import HttpRequest
from openkms.api.sealed import SealedApi


def _request(method: str, path: str, target: str = "") -> HttpRequest:
    headers = [("x-amz-target", target)] if target else []
    return HttpRequest(method, path, "", headers, b"{}", "127.0.0.1", False)


def test_every_kms_call_answers_kms_internal_exception_naming_the_sealed_state() -> None:
    api = SealedApi(lambda: {"provider": "shamir"})
    for target in ("TrentService.Encrypt", "TrentService.ListKeys", "TrentService.Nope", ""):
        response = api(_request("POST", "/", target))
        assert response.status == 500
        body = orjson.loads(response.body)
        assert body["__type"] == "KMSInternalException"
        assert "sealed" in body["message"] and "openkms operator unseal" in body["message"]
        headers = dict(response.headers)
        assert headers["Content-Type"] == "application/x-amz-json-1.1"
        assert len(headers["x-amzn-RequestId"]) == 36
    assert api(_request("GET", "/")).status == 500


def test_health_says_sealed_with_503() -> None:
    api = SealedApi(lambda: {"provider": "shamir", "worker": 7})
    for path in ("/health", "/healthz"):
        response = api(_request("GET", path))
        assert response.status == 503
        assert orjson.loads(response.body) == {
            "status": "sealed",
            "sealed": True,
            "provider": "shamir",
            "worker": 7,
        }
