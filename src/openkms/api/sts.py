"""STS at the KMS endpoint: ``GetCallerIdentity`` over the AWS query protocol, so that tools which check
their credentials first (``aws sts get-caller-identity``, Terraform, SDK credential probes) work.

A query-protocol request is a form-encoded POST without ``X-Amz-Target``
(``Action=GetCallerIdentity&Version=2011-06-15``), signed with SigV4 for the service ``sts``. Answers are
XML: ``GetCallerIdentityResponse/GetCallerIdentityResult/{Arn,UserId,Account}`` plus
``ResponseMetadata/RequestId``; errors are ``ErrorResponse/Error/{Type,Code,Message}`` + ``RequestId``
with STS's codes (``SignatureDoesNotMatch``, ``InvalidClientTokenId``, ...).

The KMS path pays one test for this (an empty ``X-Amz-Target``); see ``KmsApi.__call__``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from openkms import errors
from openkms.api.http import HttpRequest, HttpResponse
from openkms.authz.model import Principal
from openkms.service.context import Caller

SIGNING_NAME = "sts"
VERSION = "2011-06-15"
NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
CONTENT_TYPE = "text/xml"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"

# STS actions a client may send; only GetCallerIdentity is answered (the others name a clear error).
KNOWN_ACTIONS = frozenset(
    [
        "AssumeRole",
        "AssumeRoleWithSAML",
        "AssumeRoleWithWebIdentity",
        "AssumeRoot",
        "DecodeAuthorizationMessage",
        "GetAccessKeyInfo",
        "GetCallerIdentity",
        "GetDelegatedAccessToken",
        "GetFederationToken",
        "GetSessionToken",
    ]
)

# KMS-side error codes (what the verifier raises) -> (STS code, HTTP status, fault type)
_STS_ERRORS: dict[str, tuple[str, int, str]] = {
    "MissingAuthenticationTokenException": ("MissingAuthenticationToken", 403, "Sender"),
    "IncompleteSignatureException": ("IncompleteSignature", 400, "Sender"),
    "InvalidSignatureException": ("SignatureDoesNotMatch", 403, "Sender"),
    "UnrecognizedClientException": ("InvalidClientTokenId", 403, "Sender"),
    "ExpiredTokenException": ("ExpiredToken", 400, "Sender"),
    "AccessDeniedException": ("AccessDenied", 403, "Sender"),
    "UnknownOperationException": ("InvalidAction", 400, "Sender"),
    "UnsupportedOperationException": ("InvalidAction", 400, "Sender"),
    "ValidationException": ("ValidationError", 400, "Sender"),
}


class StsError(errors.KMSError):
    """An error in STS's own vocabulary (code already STS-shaped)."""

    code = "InvalidAction"
    status = 400


def is_query_request(request: HttpRequest) -> bool:
    """Whether a request without X-Amz-Target is a query-protocol (form) request."""
    for name, value in request.headers:
        if name == "content-type":
            return value.lower().startswith(FORM_CONTENT_TYPE)
    return False


def parse_form(request: HttpRequest) -> dict[str, str]:
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError:
        raise _error("MalformedQueryString", "The request body is not UTF-8.") from None
    pairs = parse_qsl(text, keep_blank_values=True)
    if request.query:
        pairs += parse_qsl(request.query, keep_blank_values=True)
    return dict(pairs)


def _error(code: str, message: str, status: int = 400) -> StsError:
    exc = StsError(message)
    exc.code = code
    exc.status = status
    return exc


def check_action(form: dict[str, str]) -> str:
    action = form.get("Action")
    if not action:
        raise _error("MissingAction", "Missing Action")
    if action not in KNOWN_ACTIONS:
        raise _error("InvalidAction", f"Could not find operation {action[:128]} for version {VERSION}")
    version = form.get("Version", VERSION)
    if version != VERSION:
        raise _error("InvalidAction", f"Could not find operation {action} for version {version[:64]}")
    if action != "GetCallerIdentity":
        raise _error("InvalidAction", f"The STS action {action} is not supported by openkms.")
    return action


@dataclass(frozen=True)
class StsService:
    principal_of: Callable[[Caller], Principal]

    def get_caller_identity(self, caller: Caller, request_id: str) -> HttpResponse:
        principal = self.principal_of(caller)
        body = (
            f'<GetCallerIdentityResponse xmlns="{NAMESPACE}">\n'
            "  <GetCallerIdentityResult>\n"
            f"    <Arn>{escape(caller.principal_arn)}</Arn>\n"
            f"    <UserId>{escape(principal.user_id)}</UserId>\n"
            f"    <Account>{escape(caller.account)}</Account>\n"
            "  </GetCallerIdentityResult>\n"
            "  <ResponseMetadata>\n"
            f"    <RequestId>{request_id}</RequestId>\n"
            "  </ResponseMetadata>\n"
            "</GetCallerIdentityResponse>\n"
        )
        return _xml(200, request_id, body)


def error_response(error: errors.KMSError, request_id: str) -> HttpResponse:
    if isinstance(error, StsError):
        code, status, fault = error.code, error.status, "Sender"
    else:
        code, status, fault = _STS_ERRORS.get(error.code, ("InternalFailure", 500, "Receiver"))
    body = (
        f'<ErrorResponse xmlns="{NAMESPACE}">\n'
        "  <Error>\n"
        f"    <Type>{fault}</Type>\n"
        f"    <Code>{code}</Code>\n"
        f"    <Message>{escape(error.message)}</Message>\n"
        "  </Error>\n"
        f"  <RequestId>{request_id}</RequestId>\n"
        "</ErrorResponse>\n"
    )
    return _xml(status, request_id, body)


def _xml(status: int, request_id: str, body: str) -> HttpResponse:
    return HttpResponse(
        status=status,
        headers=[("Content-Type", CONTENT_TYPE), ("x-amzn-RequestId", request_id)],
        body=body.encode("utf-8"),
    )
