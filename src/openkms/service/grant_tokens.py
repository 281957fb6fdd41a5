"""Grant tokens (kms-semantics.md section 5.9): ``"v1." + base64url(sealed json)``.

The payload names the grant (key account, Region, key id, grant id) plus the issuing account and time;
it is sealed by the keyring (AES-256-GCM under a key derived from the root key), so a token is opaque,
authentic, and usable the moment CreateGrant returns. A token never adds permissions: a request that
carries tokens fails with InvalidGrantTokenException when any token does not open or names a grant that no
longer exists (retired, revoked, key deleted); otherwise the stored grants decide. Grants are strongly
consistent on one node; another node's cached grant list may lag by up to its poll interval, which
``catch_up`` closes for the grants a request's tokens name. Tokens are never logged (``audit/fields.py``
never lists them).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass

from openkms import errors
from openkms.keyring.keyring import Keyring, KeyringError
from openkms.service.directory import Directory

PURPOSE = "grant-token-v1"
PREFIX = "v1."
INVALID = "The grant token is invalid."


@dataclass(frozen=True, slots=True)
class GrantRef:
    account: str
    region: str
    key_id: str
    grant_id: str


class GrantTokens:
    def __init__(self, keyring: Keyring, directory: Directory) -> None:
        self._keyring = keyring
        self._directory = directory

    def issue(self, ref: GrantRef, issuing_account: str, now: float) -> str:
        payload = {
            "a": ref.account,
            "r": ref.region,
            "k": ref.key_id,
            "g": ref.grant_id,
            "i": issuing_account,
            "t": int(now),
        }
        raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
        sealed = self._keyring.seal_token(PURPOSE, raw)
        return PREFIX + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")

    def open(self, token: str) -> GrantRef:
        """The grant a token names; InvalidGrantTokenException for anything we did not issue."""
        if not token.startswith(PREFIX):
            raise errors.InvalidGrantTokenException(INVALID)
        body = token[len(PREFIX) :]
        try:
            sealed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            payload = json.loads(self._keyring.open_token(PURPOSE, sealed))
            return GrantRef(payload["a"], payload["r"], payload["k"], payload["g"])
        except (binascii.Error, ValueError, KeyringError, KeyError, TypeError):
            raise errors.InvalidGrantTokenException(INVALID) from None

    def exists(self, ref: GrantRef) -> bool:
        grants = self._directory.grants(ref.account, ref.region, ref.key_id)
        return any(g.grant_id == ref.grant_id for g in grants)

    def catch_up(self, tokens: Iterable[object]) -> None:
        """Make this process see every grant the tokens name that exists in the database.

        A token is meant to work the moment CreateGrant returns (section 5.9), but another node learns
        of the new grant only when its poller drops the caches (up to a second later); until then its
        cached grant list would deny the request. So a token naming a grant the cached list lacks
        re-reads that key's grants. Tokens that do not open are left to :meth:`verify`."""
        for token in tokens:
            if not isinstance(token, str):
                continue
            try:
                ref = self.open(token)
            except errors.InvalidGrantTokenException:
                continue
            if not self.exists(ref):
                self._directory.grants(ref.account, ref.region, ref.key_id, reload=True)

    def verify(self, tokens: Iterable[str] | None) -> None:
        """Every token must be authentic and name a grant that still exists."""
        for token in tokens or ():
            if not self.exists(self.open(token)):
                raise errors.InvalidGrantTokenException(INVALID)
