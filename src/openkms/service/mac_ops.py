"""GenerateMac and VerifyMac for HMAC keys (kms-semantics.md section 3.3).

VerifyMac compares in constant time and answers KMSInvalidMacException (empty message) on mismatch; it
never answers ``MacValid: false``.
"""

from __future__ import annotations

from openkms import errors
from openkms.crypto import mac
from openkms.crypto.errors import InvalidMacError
from openkms.service.context import RequestContext
from openkms.service.core import Core, Params, Result
from openkms.service.key_material import check_algorithm, secret_bytes, usable_key
from openkms.service.keyspecs import GENERATE_VERIFY_MAC
from openkms.storage.base import KeyRecord

_ALGORITHMS = {a.value: a for a in mac.MacAlgorithm}


class MacOps:
    def __init__(self, core: Core) -> None:
        self.core = core

    def _prepare(self, ctx: RequestContext, p: Params, operation: str) -> tuple[KeyRecord, mac.MacAlgorithm]:
        key = usable_key(self.core, ctx, p["KeyId"], operation, GENERATE_VERIFY_MAC)
        check_algorithm(key, p["MacAlgorithm"])
        self.core.check_grant_tokens(p)
        return key, _ALGORITHMS[p["MacAlgorithm"]]

    def generate_mac(self, ctx: RequestContext, p: Params) -> Result:
        key, algorithm = self._prepare(ctx, p, "GenerateMac")
        secret = secret_bytes(self.core, key)
        if p.get("DryRun"):
            raise errors.dry_run()
        return {
            "Mac": mac.generate_mac(algorithm, secret, p["Message"]),
            "MacAlgorithm": algorithm.value,
            "KeyId": self.core.arn(key),
        }

    def verify_mac(self, ctx: RequestContext, p: Params) -> Result:
        key, algorithm = self._prepare(ctx, p, "VerifyMac")
        try:
            mac.verify_mac(algorithm, secret_bytes(self.core, key), p["Message"], p["Mac"])
        except InvalidMacError:
            raise errors.KMSInvalidMacException("") from None
        if p.get("DryRun"):
            raise errors.dry_run()
        return {"KeyId": self.core.arn(key), "MacValid": True, "MacAlgorithm": algorithm.value}
