"""Access keys: the credential store behind SigV4 (operator-managed with ``openkms admin``).

Secrets are kept wrapped under the root key (AAD binds the access key id), unwrapped only in memory for
signature checks, and compared by the SigV4 verifier in constant time.
"""

from __future__ import annotations

import hmac
import re
import secrets
import string
from dataclasses import dataclass, field

from openkms import errors
from openkms.identifiers import principal_arn
from openkms.service.core import Core
from openkms.storage.base import AccessKeyRecord, DuplicateError


@dataclass(frozen=True, slots=True)
class Credential:
    """An access key with its secret in clear: lives only in memory, never logged."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    account: str
    principal_arn: str
    user_name: str


_PURPOSE = "access-key-secret"
_ACCESS_KEY_ID = re.compile(r"[A-Za-z0-9]{3,128}\Z")
_USER_NAME = re.compile(r"[\w+=,.@-]{1,64}\Z")
_ACCOUNT = re.compile(r"\d{12}\Z")
_BASE32 = string.ascii_uppercase + "234567"


class CredentialError(ValueError):
    """An operator supplied an unusable access key id, secret, account or user name."""


class Credentials:
    def __init__(self, core: Core) -> None:
        self.core = core
        self._unwrapped: dict[tuple[str, bytes], Credential] = {}

    def create(
        self,
        account: str,
        *,
        user_name: str = "root",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> tuple[str, str]:
        """Create an access key for the account root or a user named ``user_name`` (which need not exist
        as an IAM user: such "legacy" keys predate identities). Returns (access key id, secret); the
        secret is shown to the operator once. ``Identities.create_access_key`` is the checked variant."""
        if not _USER_NAME.match(user_name):
            raise CredentialError(
                "the user name may contain letters, digits and +=,.@_- (1 to 64 characters)"
            )
        arn = principal_arn(self.core.partition, account, user_name)
        try:
            with self.core.store.tx() as tx:
                existing = tx.get_iam_principal(account, "user", user_name) if user_name != "root" else None
                if existing is not None:  # an IAM user of that name: sign as it (its path is in its ARN)
                    user_name, arn = existing.name, existing.arn
                record, secret = self.new_record(
                    account,
                    user_name=user_name,
                    principal_type="Root" if user_name == "root" else "User",
                    arn=arn,
                    access_key_id=access_key_id,
                    secret_access_key=secret_access_key,
                )
                tx.insert_access_key(record)
        except DuplicateError as exc:
            raise CredentialError(f"access key {access_key_id} already exists") from exc
        return record.access_key_id, secret

    def new_record(
        self,
        account: str,
        *,
        user_name: str,
        principal_type: str,
        arn: str,
        session_name: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> tuple[AccessKeyRecord, str]:
        """A checked access key record with its secret wrapped (not stored), and the secret in clear."""
        if not _ACCOUNT.match(account):
            raise CredentialError("the account id must be 12 digits")
        access_key_id = access_key_id or "AKIA" + "".join(secrets.choice(_BASE32) for _ in range(16))
        if not _ACCESS_KEY_ID.match(access_key_id):
            raise CredentialError("the access key id must be 3 to 128 letters or digits")
        secret_access_key = secret_access_key or secrets.token_urlsafe(30)[:40]
        if not 1 <= len(secret_access_key) <= 128:
            raise CredentialError("the secret access key must be 1 to 128 characters")
        wrapped, version = self.core.keyring.wrap_secret(_PURPOSE, access_key_id, secret_access_key.encode())
        record = AccessKeyRecord(
            access_key_id=access_key_id,
            account=account,
            user_name=user_name,
            principal_arn=arn,
            wrapped_secret=wrapped,
            root_key_version=version,
            created_at=self.core.clock.now(),
            principal_type=principal_type,
            session_name=session_name,
        )
        return record, secret_access_key

    def secret_matches(self, record: AccessKeyRecord, secret_access_key: str) -> bool:
        """Whether a stored key's secret is ``secret_access_key`` (constant-time comparison)."""
        try:
            stored = self.core.keyring.unwrap_secret(
                _PURPOSE, record.access_key_id, record.wrapped_secret, record.root_key_version
            )
        except Exception:
            return False
        return hmac.compare_digest(stored, secret_access_key.encode())

    def list(self) -> list[AccessKeyRecord]:
        with self.core.store.read() as tx:
            return tx.list_access_keys()

    def delete(self, access_key_id: str) -> bool:
        with self.core.changing() as tx:
            return tx.delete_access_key(access_key_id)

    def lookup(self, access_key_id: str) -> Credential | None:
        """SigV4's credential lookup; the unwrapped secret is cached per wrapped value."""
        record = self.core.directory.access_key(access_key_id)
        if record is None or not record.enabled:
            return None
        cache_key = (access_key_id, record.wrapped_secret)
        credential = self._unwrapped.get(cache_key)
        if credential is None:
            try:
                secret = self.core.keyring.unwrap_secret(
                    _PURPOSE, access_key_id, record.wrapped_secret, record.root_key_version
                )
            except Exception as exc:
                raise errors.KMSInternalException("The credential store could not be read.") from exc
            credential = Credential(
                access_key_id=access_key_id,
                secret_access_key=secret.decode(),
                account=record.account,
                principal_arn=record.principal_arn,
                user_name=record.user_name,
            )
            if len(self._unwrapped) > 10_000:
                self._unwrapped.clear()
            self._unwrapped[cache_key] = credential
        return credential
