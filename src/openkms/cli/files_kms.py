"""KMS side of ``openkms encrypt-file`` / ``decrypt-file``: botocore clients for an endpoint, and an AWS
Encryption SDK master key provider that uses them.

These commands are clients like any other: they reach openkms over HTTP with SigV4 (botocore) and never
touch storage. The endpoint, credentials and Region come from the options or from botocore's own
configuration (``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, shared config and credentials files), so a profile
that works for ``aws kms`` works here.

The provider uses the SDK's documented extension point (a ``MasterKeyProvider`` subclass whose
``_new_master_key`` returns a ``KMSMasterKey`` with a given client): the SDK's own KMS providers build
their clients from a botocore session and cannot take an endpoint URL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import attr
import botocore.session
from aws_encryption_sdk.key_providers.base import MasterKeyProvider, MasterKeyProviderConfig
from aws_encryption_sdk.key_providers.kms import KMSMasterKey
from botocore.config import Config
from botocore.exceptions import ClientError, ProfileNotFound

KMS_PROVIDER_ID = "aws-kms"  # what the AWS SDKs and aws-encryption-sdk-cli write for KMS data keys


class FileCommandError(Exception):
    """A failure to report as one clean line (no traceback)."""


@dataclass
class KmsError:
    code: str
    message: str
    operation: str


@dataclass
class KmsClients:
    """One botocore KMS client per Region (a key ARN names its Region), plus the errors KMS answered.

    The Encryption SDK turns a KMS error into a generic "unable to decrypt data key"; the errors recorded
    here (from botocore's ``after-call`` event) let the command say *why* (AccessDenied, disabled key...).
    """

    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    errors: list[KmsError] = field(default_factory=list)
    decrypted_with: list[str] = field(default_factory=list)  # KeyId of each successful Decrypt
    _session: Any = None
    _clients: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            self._session = botocore.session.Session(profile=self.profile)
            self._session.get_scoped_config()  # an unknown profile fails here, not mid-stream
        except ProfileNotFound as exc:
            raise FileCommandError(str(exc)) from exc

    def region_for(self, key_id: str) -> str:
        if key_id.startswith("arn:"):
            parts = key_id.split(":")
            if len(parts) >= 6 and parts[3]:
                return parts[3]
        region = self.region or self._session.get_config_variable("region")
        if not region:
            raise FileCommandError(
                f"no Region for key {key_id!r}: pass --region, set AWS_REGION, or use a key ARN"
            )
        return str(region)

    def client(self, key_id: str) -> Any:
        region = self.region_for(key_id)
        if region not in self._clients:
            client = self._session.create_client(
                "kms",
                region_name=region,
                endpoint_url=self.endpoint_url,  # None: botocore's AWS_ENDPOINT_URL / profile endpoint_url
                config=Config(retries={"mode": "standard", "max_attempts": 3}),
            )
            client.meta.events.register("after-call.kms", self._record_error)
            self._clients[region] = client
        return self._clients[region]

    def _record_error(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        error = parsed.get("Error") if isinstance(parsed, dict) else None
        if error:
            self.errors.append(
                KmsError(str(error.get("Code", "")), str(error.get("Message", "")), str(model.name))
            )
        elif model.name == "Decrypt" and isinstance(parsed, dict) and "KeyId" in parsed:
            self.decrypted_with.append(str(parsed["KeyId"]))

    def resolve(self, key_id: str) -> str:
        """The key ARN for a key id, ARN, alias name or alias ARN, or a clean error.

        A key ARN is used as is: DescribeKey would need a permission that a decrypt-only (or
        encrypt-only) principal may not have. Anything else is looked up with DescribeKey, because the
        message records key ARNs and the SDK matches data keys by ARN."""
        if key_id.startswith("arn:") and ":key/" in key_id:
            return key_id
        try:
            arn = self.client(key_id).describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise FileCommandError(
                f"key {key_id}: {err.get('Code', 'Error')}: {err.get('Message', '')}".rstrip(": ")
            ) from exc
        return str(arn)


@attr.s(hash=True)
class _ProviderConfig(MasterKeyProviderConfig):  # type: ignore[misc]
    clients: KmsClients = attr.ib(hash=False)
    discovery: bool = attr.ib(default=False)


class EndpointKmsKeyProvider(MasterKeyProvider):  # type: ignore[misc]
    """KMS master keys whose clients point at the configured endpoint.

    Encryption: the keys added with ``add_master_key`` (the first generates the data key, the others
    encrypt it too). Decryption: with ``discovery=True`` any KMS data key in the message is tried (the
    server decides whether the caller may use it); otherwise only data keys of the added keys.
    """

    provider_id = KMS_PROVIDER_ID
    _config_class = _ProviderConfig

    def __init__(self, **_: Any) -> None:
        self.vend_masterkey_on_decrypt = bool(self.config.discovery)

    def _new_master_key(self, key_id: bytes | str) -> KMSMasterKey:
        text = key_id.decode() if isinstance(key_id, bytes) else key_id
        return KMSMasterKey(key_id=text, client=self.config.clients.client(text))


def quiet_sdk_logs() -> None:
    """The SDK logs every failed KMS call with ``logger.exception``; Python's last-resort handler would
    print those tracebacks. The commands report errors themselves."""
    for name in ("aws_encryption_sdk", "botocore", "urllib3"):
        logger = logging.getLogger(name)
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
