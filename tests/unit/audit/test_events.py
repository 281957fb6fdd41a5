"""Records built from outcomes: the CloudTrail shape, and nothing secret."""

from __future__ import annotations

import base64
import uuid

import orjson

from openkms import errors
from openkms.api.protocol import Outcome
from openkms.api.sigv4 import Credential, VerifiedRequest
from openkms.audit.chain import canonical
from openkms.audit.events import EventBuilder
from openkms.service.context import Caller, RequestContext

ACCOUNT = "111122223333"
ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CREDENTIAL = Credential("AKIAEXAMPLE", "wJalrXUtnFEMI/K7MDENG", ACCOUNT, f"arn:aws:iam::{ACCOUNT}:user/alice")
SECRET_PLAINTEXT = b"top secret plaintext 4711"
BLOB = b"\x01ciphertext-blob-bytes"


def outcome(
    operation: str = "Encrypt",
    *,
    error: errors.KMSError | None = None,
    params: dict | None = None,
    result: dict | None = None,
    verified: bool = True,
) -> Outcome:
    ctx = RequestContext(
        "req-1",
        Caller(ACCOUNT, CREDENTIAL.principal_arn, "AKIAEXAMPLE"),
        "us-east-1",
        "192.0.2.10",
        "Boto3/1.x",
        1735732800.25,
    )
    ctx.resources.extend([ARN, ARN])
    return Outcome(
        "req-1",
        operation,
        VerifiedRequest(CREDENTIAL, "us-east-1", 0.0) if verified else None,
        error,
        0.0,
        1735732800.25,
        "192.0.2.10",
        "Boto3/1.x",
        "kms",
        params,
        result,
        ctx if verified else None,
        access_key_id=None if verified else "AKIAEXAMPLE",
    )


def record(o: Outcome) -> dict:
    event = EventBuilder("aws").api_event(o)
    parsed = orjson.loads(event.body)
    assert canonical(parsed) == event.body  # canonical: re-encoding gives the same bytes
    return parsed


def test_encrypt_success_shape() -> None:
    params = {"KeyId": "alias/app", "Plaintext": SECRET_PLAINTEXT, "EncryptionContext": {"Department": "10"}}
    result = {"CiphertextBlob": BLOB, "KeyId": ARN, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}
    r = record(outcome(params=params, result=result))
    assert r["eventVersion"] == "1.08"
    assert r["eventSource"] == "kms.amazonaws.com"
    assert r["eventName"] == "Encrypt"
    assert r["eventTime"] == "2025-01-01T12:00:00Z"
    assert r["awsRegion"] == "us-east-1"
    assert r["sourceIPAddress"] == "192.0.2.10"
    assert r["userAgent"] == "Boto3/1.x"
    assert r["userIdentity"] == {
        "type": "IAMUser",
        "userName": "alice",
        "arn": CREDENTIAL.principal_arn,
        "accountId": ACCOUNT,
        "accessKeyId": "AKIAEXAMPLE",
    }
    assert r["requestParameters"] == {"keyId": "alias/app", "encryptionContext": {"Department": "10"}}
    assert r["responseElements"] is None
    assert r["requestID"] == "req-1"
    assert uuid.UUID(r["eventID"]).version == 4
    assert r["readOnly"] is True
    assert r["resources"] == [{"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": ARN}]  # deduplicated
    assert r["eventType"] == "AwsApiCall"
    assert r["recipientAccountId"] == ACCOUNT
    assert r["managementEvent"] is True and r["eventCategory"] == "Management"
    assert "errorCode" not in r


def test_failure_has_error_and_keeps_resources() -> None:
    r = record(
        outcome("Decrypt", error=errors.InvalidCiphertextException(""), params={"CiphertextBlob": BLOB})
    )
    assert r["errorCode"] == "InvalidCiphertextException"
    assert r["errorMessage"] == ""
    assert r["resources"][0]["ARN"] == ARN
    assert r["responseElements"] is None


def test_unauthenticated_request() -> None:
    r = record(outcome("Decrypt", error=errors.InvalidSignatureException("bad"), params=None, verified=False))
    assert r["userIdentity"] == {"type": "Unknown", "accessKeyId": "AKIAEXAMPLE"}
    assert r["requestParameters"] is None
    assert r["recipientAccountId"] is None
    assert r["errorCode"] == "InvalidSignatureException"


def test_no_secret_ever_reaches_a_record() -> None:
    secret_params = {
        "KeyId": "k",
        "Plaintext": SECRET_PLAINTEXT,
        "CiphertextBlob": BLOB,
        "GrantTokens": ["grant-token-xyz"],
        "Message": SECRET_PLAINTEXT,
        "Signature": BLOB,
        "Mac": BLOB,
        "ImportToken": BLOB,
        "EncryptedKeyMaterial": BLOB,
        "PublicKey": BLOB,
        "KeyStorePassword": "hsm-password-xyz",
    }
    secret_result = {
        "Plaintext": SECRET_PLAINTEXT,
        "CiphertextBlob": BLOB,
        "Signature": BLOB,
        "Mac": BLOB,
        "PrivateKeyPlaintext": SECRET_PLAINTEXT,
        "SharedSecret": SECRET_PLAINTEXT,
        "KeyId": ARN,
    }
    needles = [
        SECRET_PLAINTEXT,
        BLOB,
        b"grant-token-xyz",
        b"hsm-password-xyz",
        CREDENTIAL.secret_access_key.encode(),
    ]
    needles += [base64.b64encode(n) for n in needles]
    from openkms.audit.fields import REQUEST_MEMBERS

    builder = EventBuilder("aws")
    for operation in REQUEST_MEMBERS:
        for error in (None, errors.ValidationException("x")):
            body = builder.api_event(
                outcome(operation, params=secret_params, result=secret_result, error=error)
            ).body
            for needle in needles:
                assert needle not in body, (operation, needle)


def test_create_key_lists_the_created_key() -> None:
    o = outcome("CreateKey", params={"Description": "d"}, result={"KeyMetadata": {"Arn": ARN, "KeyId": "x"}})
    o.context.resources.clear()  # type: ignore[union-attr]
    r = record(o)
    assert r["resources"] == [{"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": ARN}]
    assert r["responseElements"] == {"keyMetadata": {"arn": ARN, "keyId": "x"}}
    assert r["readOnly"] is False


def test_service_event_shape() -> None:
    event = EventBuilder("aws").service_event(
        "RotateKey",
        account=ACCOUNT,
        region="us-east-1",
        key_id="1234abcd-12ab-34cd-56ef-1234567890ab",
        when=1735732800.0,
    )
    r = orjson.loads(event.body)
    assert r["eventType"] == "AwsServiceEvent"
    assert r["userIdentity"] == {"accountId": ACCOUNT, "invokedBy": "AWS Internal"}
    assert r["sourceIPAddress"] == r["userAgent"] == "AWS Internal"
    assert r["requestParameters"] is None and r["responseElements"] is None
    assert "requestID" not in r
    assert r["serviceEventDetails"] == {"keyId": "1234abcd-12ab-34cd-56ef-1234567890ab"}
    assert r["resources"][0]["ARN"] == ARN
    assert r["recipientAccountId"] == ACCOUNT and r["readOnly"] is False


def test_event_ids_distinct() -> None:
    builder = EventBuilder("aws")
    ids = {builder.api_event(outcome()).body for _ in range(2000)}
    assert len(ids) == 2000


def test_principal_id_of_the_authorized_caller() -> None:
    o = outcome(params={"KeyId": "alias/app", "Plaintext": SECRET_PLAINTEXT})
    assert "principalId" not in record(o)["userIdentity"]  # no authorization check ran: not known
    assert o.context is not None
    o.context.principal_ids.append("AIDAEXAMPLE0000000001")
    assert record(o)["userIdentity"]["principalId"] == "AIDAEXAMPLE0000000001"


def test_principal_id_of_a_caller_refused_before_authorization() -> None:
    o = outcome(error=errors.ValidationException("1 validation error detected"))
    o.principal_id = "AIDAEXAMPLE0000000002"  # looked up by the front door (KmsApi._finish)
    assert record(o)["userIdentity"]["principalId"] == "AIDAEXAMPLE0000000002"
    assert o.context is not None
    o.context.principal_ids.append("AIDAEXAMPLE0000000001")  # an authorization check's own value wins
    assert record(o)["userIdentity"]["principalId"] == "AIDAEXAMPLE0000000001"
    unauthenticated = outcome(verified=False)
    unauthenticated.principal_id = "AIDAEXAMPLE0000000002"
    assert "principalId" not in record(unauthenticated)["userIdentity"]
