"""Keyring: material wrapping with AAD binding, root-key versions, bounded LRU cache, secrets."""

from __future__ import annotations

import pickle
import threading
import time

import pytest

from openkms.crypto.symmetric import generate_symmetric_material
from openkms.keyring import Keyring, KeyringError

ACCOUNT = "111122223333"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
MID = "ab" * 32
SPEC = "SYMMETRIC_DEFAULT"
ROOT1 = bytes(range(32))
ROOT2 = bytes(range(32, 64))


def make(**kwargs: object) -> Keyring:
    return Keyring({1: ROOT1, 2: ROOT2}, current_version=2, **kwargs)  # type: ignore[arg-type]


def test_round_trip_uses_current_version() -> None:
    ring = make()
    material = generate_symmetric_material()
    ekt, version = ring.wrap_material(ACCOUNT, KEY_ID, MID, SPEC, material)
    assert version == 2
    assert material not in ekt
    assert ring.unwrap_material(ACCOUNT, KEY_ID, MID, SPEC, ekt, version) == material
    # A fresh keyring (no cache) unwraps too.
    assert make().unwrap_material(ACCOUNT, KEY_ID, MID, SPEC, ekt, version) == material


def test_old_root_version_still_unwraps() -> None:
    old = Keyring({1: ROOT1}, current_version=1)
    material = generate_symmetric_material()
    ekt, version = old.wrap_material(ACCOUNT, KEY_ID, MID, SPEC, material)
    assert make().unwrap_material(ACCOUNT, KEY_ID, MID, SPEC, ekt, version) == material
    with pytest.raises(KeyringError):
        make(cache_size=0).unwrap_material(ACCOUNT, KEY_ID, MID, SPEC, ekt, 2)


@pytest.mark.parametrize(
    "binding",
    [
        ("999999999999", KEY_ID, MID, SPEC),
        (ACCOUNT, "mrk-1234abcd12ab34cd56ef1234567890ab", MID, SPEC),
        (ACCOUNT, KEY_ID, "cd" * 32, SPEC),
        (ACCOUNT, KEY_ID, MID, "HMAC_256"),
    ],
)
def test_aad_binds_every_field(binding: tuple[str, str, str, str]) -> None:
    ring = make(cache_size=0)
    ekt, version = ring.wrap_material(ACCOUNT, KEY_ID, MID, SPEC, b"m" * 32)
    with pytest.raises(KeyringError):
        ring.unwrap_material(*binding, ekt, version)


def test_aad_fields_cannot_be_shifted() -> None:
    ring = make(cache_size=0)
    ekt, version = ring.wrap_material("ab", "c", "x", "y", b"m" * 32)
    with pytest.raises(KeyringError):
        ring.unwrap_material("a", "bc", "x", "y", ekt, version)


def test_wrong_root_key_and_unknown_version() -> None:
    ekt, version = make().wrap_material(ACCOUNT, KEY_ID, MID, SPEC, b"m" * 32)
    other = Keyring({2: bytes(32)}, current_version=2, cache_size=0)
    with pytest.raises(KeyringError):
        other.unwrap_material(ACCOUNT, KEY_ID, MID, SPEC, ekt, version)
    with pytest.raises(KeyringError):
        make().unwrap_material(ACCOUNT, KEY_ID, MID, SPEC, ekt, 7)
    with pytest.raises(KeyringError):
        make().unwrap_material(ACCOUNT, KEY_ID, MID, SPEC, ekt[:-1], version)


def test_cache_hits_skip_unwrap_but_not_across_specs() -> None:
    ring = make()
    ekt, version = ring.wrap_material(ACCOUNT, KEY_ID, MID, SPEC, b"m" * 32)
    assert ring.unwrap_material(ACCOUNT, KEY_ID, MID, SPEC, ekt, version) == b"m" * 32
    # Cached: a bogus EKT is not even looked at for the same (account, key, material, spec) ...
    assert ring.unwrap_material(ACCOUNT, KEY_ID, MID, SPEC, b"junk", version) == b"m" * 32
    # ... but a different key spec is never served from the cache.
    with pytest.raises(KeyringError):
        ring.unwrap_material(ACCOUNT, KEY_ID, MID, "HMAC_256", ekt, version)


def test_cache_is_bounded_lru() -> None:
    ring = make(cache_size=3)
    ekts = {}
    for i in range(4):
        ekts[i] = ring.wrap_material(ACCOUNT, KEY_ID, str(i), SPEC, bytes([i]) * 32)
    for i in range(3):
        ring.unwrap_material(ACCOUNT, KEY_ID, str(i), SPEC, *ekts[i])
    ring.unwrap_material(ACCOUNT, KEY_ID, "0", SPEC, b"junk", 2)  # touch 0: now most recent
    ring.unwrap_material(ACCOUNT, KEY_ID, "3", SPEC, *ekts[3])  # evicts 1 (least recent)
    assert "cached=3/3" in repr(ring)
    assert ring.unwrap_material(ACCOUNT, KEY_ID, "0", SPEC, b"junk", 2) == bytes([0]) * 32
    with pytest.raises(KeyringError):
        ring.unwrap_material(ACCOUNT, KEY_ID, "1", SPEC, b"junk", 2)


def test_cache_disabled() -> None:
    ring = make(cache_size=0)
    ekt, version = ring.wrap_material(ACCOUNT, KEY_ID, MID, SPEC, b"m" * 32)
    ring.unwrap_material(ACCOUNT, KEY_ID, MID, SPEC, ekt, version)
    with pytest.raises(KeyringError):
        ring.unwrap_material(ACCOUNT, KEY_ID, MID, SPEC, b"junk", version)


def test_cache_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    ring = make(cache_ttl=10.0)
    ekt, version = ring.wrap_material(ACCOUNT, KEY_ID, MID, SPEC, b"m" * 32)
    ring.unwrap_material(ACCOUNT, KEY_ID, MID, SPEC, ekt, version)
    assert ring.unwrap_material(ACCOUNT, KEY_ID, MID, SPEC, b"junk", version) == b"m" * 32
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + 11)
    with pytest.raises(KeyringError):
        ring.unwrap_material(ACCOUNT, KEY_ID, MID, SPEC, b"junk", version)


def test_evict_and_clear() -> None:
    ring = make()
    other_key = "0b0c0d0e-1f2a-4b3c-8d9e-0f1a2b3c4d5e"
    a1 = ring.wrap_material(ACCOUNT, KEY_ID, "1", SPEC, b"a" * 32)
    a2 = ring.wrap_material(ACCOUNT, KEY_ID, "2", SPEC, b"b" * 32)
    b1 = ring.wrap_material(ACCOUNT, other_key, "1", SPEC, b"c" * 32)
    ring.unwrap_material(ACCOUNT, KEY_ID, "1", SPEC, *a1)
    ring.unwrap_material(ACCOUNT, KEY_ID, "2", SPEC, *a2)
    ring.unwrap_material(ACCOUNT, other_key, "1", SPEC, *b1)
    ring.evict(ACCOUNT, KEY_ID)
    ring.evict(ACCOUNT, "never-cached")
    for mid in ("1", "2"):
        with pytest.raises(KeyringError):
            ring.unwrap_material(ACCOUNT, KEY_ID, mid, SPEC, b"junk", 2)
    assert ring.unwrap_material(ACCOUNT, other_key, "1", SPEC, b"junk", 2) == b"c" * 32
    ring.clear()
    with pytest.raises(KeyringError):
        ring.unwrap_material(ACCOUNT, other_key, "1", SPEC, b"junk", 2)
    assert "cached=0/" in repr(ring)


def test_thread_safety_under_contention() -> None:
    ring = make(cache_size=8)
    ekts = [ring.wrap_material(ACCOUNT, KEY_ID, str(i), SPEC, bytes([i]) * 32) for i in range(32)]
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        try:
            for n in range(400):
                i = (seed * 7 + n) % 32
                assert ring.unwrap_material(ACCOUNT, KEY_ID, str(i), SPEC, *ekts[i]) == bytes([i]) * 32
                if n % 50 == 0:
                    ring.evict(ACCOUNT, KEY_ID)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(ring._cache) <= 8


def test_secrets() -> None:
    ring = make()
    wrapped, version = ring.wrap_secret("access-key", "AKIAEXAMPLE", b"s3cr3t")
    assert version == 2
    assert ring.unwrap_secret("access-key", "AKIAEXAMPLE", wrapped, version) == b"s3cr3t"
    for purpose, binding in (
        ("access-key", "AKIAOTHER"),
        ("other", "AKIAEXAMPLE"),
        ("access-keyA", "KIAEXAMPLE"),
    ):
        with pytest.raises(KeyringError):
            ring.unwrap_secret(purpose, binding, wrapped, version)
    with pytest.raises(KeyringError):
        ring.unwrap_secret("access-key", "AKIAEXAMPLE", wrapped, 1)
    with pytest.raises(KeyringError):
        ring.unwrap_secret("access-key", "AKIAEXAMPLE", wrapped, 9)


def test_secret_and_material_keys_are_separated() -> None:
    ring = make(cache_size=0)
    wrapped, version = ring.wrap_secret("p", "b", b"m" * 32)
    with pytest.raises(KeyringError):
        ring.unwrap_material("p", "b", "", "", wrapped, version)


def test_subkey_is_stable_across_root_rotation_and_separated() -> None:
    ring = make()
    assert ring.subkey(b"pagination") == ring.subkey(b"pagination") == make().subkey(b"pagination")
    assert len(ring.subkey(b"pagination")) == 32
    assert ring.subkey(b"pagination") != ring.subkey(b"grant-token")
    # derived from the oldest version: the same before the rotation to version 2 and after it
    assert ring.subkey(b"pagination") == Keyring({1: ROOT1}, current_version=1).subkey(b"pagination")
    assert ring.subkey(b"pagination") != Keyring({1: ROOT2}, current_version=1).subkey(b"pagination")
    assert ring.identity_key() == ring.subkey(b"material-id-v1")
    # Caller sub-keys never equal the internal wrapping keys.
    for version in (1, 2):
        internal = (ring._ekt_keys[version], ring._secret_keys[version], ring._token_keys[version])
        for purpose in (b"ekt-wrap", b"secret-wrap", b"token-seal"):
            assert ring.subkey(purpose) not in internal


def test_repr_and_pickle_reveal_nothing() -> None:
    ring = make()
    material = b"\x07" * 32
    ring.unwrap_material(
        ACCOUNT, KEY_ID, MID, SPEC, *ring.wrap_material(ACCOUNT, KEY_ID, MID, SPEC, material)
    )
    text = repr(ring) + str(ring)
    for secret in (ROOT1, ROOT2, material):
        assert secret.hex() not in text
        assert repr(secret) not in text
    assert text.startswith("Keyring(versions=[1, 2], current_version=2")
    with pytest.raises(TypeError):
        pickle.dumps(ring)


def test_constructor_validation() -> None:
    with pytest.raises(ValueError):
        Keyring({1: ROOT1}, current_version=2)
    with pytest.raises(ValueError):
        Keyring({1: bytes(16)}, current_version=1)
    with pytest.raises(ValueError):
        Keyring({1: ROOT1}, current_version=1, cache_size=-1)
    with pytest.raises(ValueError):
        Keyring({1: ROOT1}, current_version=1, cache_ttl=0)
    ring = Keyring({1: ROOT1, 3: ROOT2}, current_version=3)
    assert ring.current_version == 3
    assert ring.versions == frozenset({1, 3})


def test_generate_root_key() -> None:
    a, b = Keyring.generate_root_key(), Keyring.generate_root_key()
    assert len(a) == 32 and a != b


def test_tokens_are_opaque_authentic_and_bound_to_purpose() -> None:
    ring = make()
    payload = b'{"g":"grant-id"}'
    sealed = ring.seal_token("grant-token-v1", payload)
    assert payload not in sealed
    assert ring.open_token("grant-token-v1", sealed) == payload
    assert sealed != ring.seal_token("grant-token-v1", payload)  # a fresh IV every time
    # survives a root-key rotation: the sealing version travels with the token
    assert (
        Keyring({1: ROOT1, 2: ROOT2, 3: bytes(32)}, current_version=3).open_token("grant-token-v1", sealed)
        == payload
    )
    with pytest.raises(KeyringError):
        ring.open_token("import-token-v1", sealed)
    for i in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[i] ^= 1
        with pytest.raises(KeyringError):
            ring.open_token("grant-token-v1", bytes(tampered))
    for bad in (b"", b"\x00\x00\x00\x02", sealed[:-1], b"\x00\x00\x00\x09" + sealed[4:]):
        with pytest.raises(KeyringError):
            ring.open_token("grant-token-v1", bad)
    with pytest.raises(KeyringError):  # another root key cannot open it
        Keyring({2: ROOT1}, current_version=2).open_token("grant-token-v1", sealed)


def test_tokens_are_bound_to_their_binding() -> None:
    ring = make()
    sealed = ring.seal_token("import-token-v1", b"payload", b"\x00\x00\x00\x01a\x00\x00\x00\x01k")
    assert ring.open_token("import-token-v1", sealed, b"\x00\x00\x00\x01a\x00\x00\x00\x01k") == b"payload"
    for other in (b"", b"\x00\x00\x00\x01a\x00\x00\x00\x01j"):
        with pytest.raises(KeyringError):
            ring.open_token("import-token-v1", sealed, other)
    # the purpose is length-prefixed: moving bytes between purpose and binding does not open it
    with pytest.raises(KeyringError):
        ring.open_token("import-token-v1\x00", sealed, b"\x00\x00\x01a\x00\x00\x00\x01k")
