"""One exception class per AWS error code, translated to HTTP in one place (``api.protocol``).

Tree::

    KMSError                         code, HTTP status, client-safe message
    ├── client faults (400)          modelled KMS exceptions, validation and authentication errors
    └── server faults (500/503)      KMSInternalException, KeyUnavailableException,
                                     DependencyTimeoutException,
                                     ServiceUnavailable, InternalFailure

The message of a ``KMSError`` is sent to the client verbatim, so it must never contain plaintext, key
material, secrets, tokens or internal details. Anything unexpected is raised as a plain Python exception
and becomes ``KMSInternalException`` with only the request id in the message.
"""

from __future__ import annotations


class KMSError(Exception):
    """Base of every error the service answers with; ``code`` is the wire ``__type``."""

    code: str = "KMSInternalException"
    status: int = 400

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"{type(self).__name__}({self.message!r})"


def _client(code: str) -> type[KMSError]:
    return type(code, (KMSError,), {"code": code, "status": 400, "__module__": __name__})


def _server(code: str, status: int) -> type[KMSError]:
    return type(code, (KMSError,), {"code": code, "status": status, "__module__": __name__})


# --- protocol and authentication (common errors of every AWS JSON service) ---
SerializationException = _client("SerializationException")
UnknownOperationException = _client("UnknownOperationException")
ValidationException = _client("ValidationException")
MissingAuthenticationTokenException = _client("MissingAuthenticationTokenException")
IncompleteSignatureException = _client("IncompleteSignatureException")
InvalidSignatureException = _client("InvalidSignatureException")
UnrecognizedClientException = _client("UnrecognizedClientException")
ExpiredTokenException = _client("ExpiredTokenException")
AccessDeniedException = _client("AccessDeniedException")
ThrottlingException = _client("ThrottlingException")
RequestEntityTooLargeException = _client("RequestEntityTooLargeException")
RequestEntityTooLargeException.status = 413

# --- modelled KMS exceptions ---
AlreadyExistsException = _client("AlreadyExistsException")
ConflictException = _client("ConflictException")
DisabledException = _client("DisabledException")
DryRunOperationException = _client("DryRunOperationException")
ExpiredImportTokenException = _client("ExpiredImportTokenException")
IncorrectKeyException = _client("IncorrectKeyException")
IncorrectKeyMaterialException = _client("IncorrectKeyMaterialException")
InvalidAliasNameException = _client("InvalidAliasNameException")
InvalidArnException = _client("InvalidArnException")
InvalidCiphertextException = _client("InvalidCiphertextException")
InvalidGrantIdException = _client("InvalidGrantIdException")
InvalidGrantTokenException = _client("InvalidGrantTokenException")
InvalidImportTokenException = _client("InvalidImportTokenException")
InvalidKeyUsageException = _client("InvalidKeyUsageException")
InvalidMarkerException = _client("InvalidMarkerException")
KMSInvalidMacException = _client("KMSInvalidMacException")
KMSInvalidSignatureException = _client("KMSInvalidSignatureException")
KMSInvalidStateException = _client("KMSInvalidStateException")
LimitExceededException = _client("LimitExceededException")
MalformedPolicyDocumentException = _client("MalformedPolicyDocumentException")
NotFoundException = _client("NotFoundException")
TagException = _client("TagException")
UnsupportedOperationException = _client("UnsupportedOperationException")
CustomKeyStoreNotFoundException = _client("CustomKeyStoreNotFoundException")
NotAuthorizedException = _client("NotAuthorizedException")

# --- server faults ---
KMSInternalException = _server("KMSInternalException", 500)
KeyUnavailableException = _server("KeyUnavailableException", 500)
DependencyTimeoutException = _server("DependencyTimeoutException", 503)
InternalFailure = _server("InternalFailure", 500)
ServiceUnavailable = _server("ServiceUnavailable", 503)

DRY_RUN_MESSAGE = "The request would have succeeded, but the DryRun option is set."


def dry_run() -> KMSError:
    """The answer to a DryRun request whose real call would have succeeded."""
    return DryRunOperationException(DRY_RUN_MESSAGE)
