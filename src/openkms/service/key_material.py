"""Key material of every key spec, and the checks every asymmetric/HMAC operation starts with.

Material in its stored form (kms-semantics.md section 5.2) -- always wrapped by the keyring:
SYMMETRIC_DEFAULT 32 random bytes; HMAC_* raw key bytes; RSA/ECC/Ed25519 PKCS#8 DER; ML-DSA and ML-KEM
seeds. The public key (DER SubjectPublicKeyInfo) is stored in clear next to it.
"""

from __future__ import annotations

from openkms import errors
from openkms.crypto import asymmetric, mac
from openkms.crypto.symmetric import generate_symmetric_material
from openkms.service.context import RequestContext
from openkms.service.core import Core
from openkms.service.keyspecs import SPECS
from openkms.service.keystate import StateRule, check_state
from openkms.storage.base import KeyRecord, MaterialRecord


def new_material(spec: str) -> tuple[bytes, bytes | None]:
    """``(secret in stored form, DER SubjectPublicKeyInfo or None)`` for a new key of ``spec``.

    RSA generation takes up to seconds: call this only off the event loop (CreateKey runs on a thread).
    """
    if spec == "SYMMETRIC_DEFAULT":
        return generate_symmetric_material(), None
    if spec in mac.KEY_LENGTH:
        return mac.generate_key(spec), None
    secret = asymmetric.generate_material(spec)
    return secret, asymmetric.load(spec, secret).public_der


def usable_key(
    core: Core, ctx: RequestContext, key_id: str, operation: str, usage: str, permission: str | None = None
) -> KeyRecord:
    """Resolve and authorize ``key_id``, then apply the checks in AWS's order: key state, then key usage
    (section 4.2)."""
    key = core.resolve(ctx, key_id, allow_alias=True, action=operation, permission=permission)
    arn = core.arn(key)
    check_state(StateRule.CRYPTO, key.state, arn)
    if key.key_usage != usage:
        raise errors.InvalidKeyUsageException(
            f"{arn} key usage is {key.key_usage} which is not valid for {operation}."
        )
    return key


def check_algorithm(key: KeyRecord, algorithm: str) -> None:
    """The algorithm must be in the key's list (after the usage check, as AWS orders them)."""
    if algorithm not in SPECS[key.key_spec].usages.get(key.key_usage, ()):
        raise errors.InvalidKeyUsageException(
            f"Algorithm {algorithm} is incompatible with key spec {key.key_spec}."
        )


def current_material(core: Core, key: KeyRecord) -> MaterialRecord:
    material_id = key.current_material_id
    material = core.material(key, material_id) if material_id else None
    if material is None:
        raise errors.KMSInvalidStateException(f"{core.arn(key)} is pending import.")
    return material


def secret_bytes(core: Core, key: KeyRecord) -> bytes:
    """The unwrapped current material of a key (HMAC keys), from the keyring's cache when warm."""
    return core.secret_of(key, current_material(core, key))


def key_pair(core: Core, key: KeyRecord) -> asymmetric.KeyPair:
    """The loaded private key of an asymmetric KMS key: from the cache, or unwrapped and loaded once."""
    material_id = key.current_material_id
    if material_id is not None:
        cached = core.key_pairs.get(key.account, key.key_id, material_id, key.key_spec)
        if cached is not None:
            return cached
    material = current_material(core, key)
    pair = asymmetric.load(key.key_spec, core.secret_of(key, material))
    core.key_pairs.put(key.account, key.key_id, material.material_id, pair)
    return pair
