"""One conformance suite for every root-of-trust provider (the contract in ``rootoftrust/base.py``).

To add a provider, add a factory to ``PROVIDERS``: it gets a fresh temporary directory and returns two
independent instances of the provider (``a`` and ``b`` must use different secrets: a value wrapped by
one must not unwrap with the other).  pkcs11 runs against SoftHSM2 (a token per test directory).
"""

from __future__ import annotations

import os
import pickle
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.support.softhsm import MODULE, USER_PIN, SoftHsm

from openkms.rootoftrust import RootOfTrust, RootOfTrustError
from openkms.rootoftrust.file import FileRootOfTrust
from openkms.rootoftrust.shamir import ShamirRootOfTrust

Pair = tuple[RootOfTrust, RootOfTrust]


def _file(tmp: Path) -> Pair:
    return FileRootOfTrust.create(tmp / "a.key"), FileRootOfTrust.create(tmp / "b.key")


@pytest.fixture(scope="module")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    # One SoftHSM2 configuration per module: the PKCS#11 module reads SOFTHSM2_CONF when it initializes.
    hsm = SoftHsm(tmp_path_factory.mktemp("softhsm"))
    old = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(hsm.conf)
    yield hsm
    if old is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = old


_COUNTER = iter(range(1_000_000))


def pkcs11_provider(hsm: SoftHsm, key_label: str = "root", *, token: str | None = None) -> RootOfTrust:
    from openkms.rootoftrust.pkcs11 import Pkcs11Config, Pkcs11RootOfTrust, pin_value

    if token is None:
        token = f"t{next(_COUNTER)}-{os.getpid()}"
        hsm.init_token(token)
    return Pkcs11RootOfTrust(Pkcs11Config(MODULE, token, key_label, pin_value(USER_PIN)), create_key=True)


def _pkcs11(tmp: Path, hsm: SoftHsm) -> Pair:
    # a and b: same token, different keys -- the strictest "different key of the same kind" case.
    a = pkcs11_provider(hsm, "root-a")
    token = a.config.token_label  # type: ignore[attr-defined]
    return a, pkcs11_provider(hsm, "root-b", token=token)


# name -> factory(tmp_path, request)
PROVIDERS: dict[str, Callable[[Path, pytest.FixtureRequest], Pair]] = {
    "file": lambda tmp, request: _file(tmp),
    "pkcs11": lambda tmp, request: _pkcs11(tmp, request.getfixturevalue("softhsm")),
    # two independent splits (each with its own unseal key and cluster id)
    "shamir": lambda tmp, request: (ShamirRootOfTrust.create(5, 3)[0], ShamirRootOfTrust.create(5, 3)[0]),
}


@pytest.fixture(params=sorted(PROVIDERS))
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Pair:
    return PROVIDERS[request.param](tmp_path, request)


@pytest.fixture
def rot(pair: Pair) -> RootOfTrust:
    return pair[0]


ROOT_KEY = bytes(range(32))


def test_is_a_root_of_trust(rot: RootOfTrust) -> None:
    assert isinstance(rot, RootOfTrust)
    assert rot.name in PROVIDERS


def test_round_trip(rot: RootOfTrust) -> None:
    for key in (ROOT_KEY, bytes(32), os.urandom(32)):
        assert rot.unwrap_root_key(rot.wrap_root_key(key)) == key


def test_rejects_wrong_length_root_key(rot: RootOfTrust) -> None:
    for bad in (b"", bytes(31), bytes(33)):
        with pytest.raises(ValueError):
            rot.wrap_root_key(bad)


def test_wrapping_is_randomised(rot: RootOfTrust) -> None:
    wrapped = {rot.wrap_root_key(ROOT_KEY) for _ in range(5)}
    assert len(wrapped) == 5
    assert all(rot.unwrap_root_key(w) == ROOT_KEY for w in wrapped)
    assert all(ROOT_KEY not in w for w in wrapped)


def test_every_bit_flip_is_rejected(rot: RootOfTrust) -> None:
    wrapped = rot.wrap_root_key(ROOT_KEY)
    for i in range(len(wrapped)):
        for bit in (0x01, 0x80):
            tampered = bytearray(wrapped)
            tampered[i] ^= bit
            with pytest.raises(RootOfTrustError):
                rot.unwrap_root_key(bytes(tampered))
    # the provider still works after all those rejections
    assert rot.unwrap_root_key(wrapped) == ROOT_KEY


def test_truncated_and_extended_values_are_rejected(rot: RootOfTrust) -> None:
    wrapped = rot.wrap_root_key(ROOT_KEY)
    for bad in (b"", wrapped[:1], wrapped[:-1], wrapped + b"\x00", bytes(len(wrapped))):
        with pytest.raises(RootOfTrustError):
            rot.unwrap_root_key(bad)


def test_value_of_another_instance_is_rejected(pair: Pair) -> None:
    a, b = pair
    with pytest.raises(RootOfTrustError):
        b.unwrap_root_key(a.wrap_root_key(ROOT_KEY))
    with pytest.raises(RootOfTrustError):
        a.unwrap_root_key(b.wrap_root_key(ROOT_KEY))


@pytest.mark.parametrize(
    ("mine", "other"), [(m, o) for m in sorted(PROVIDERS) for o in sorted(PROVIDERS) if m != o]
)
def test_value_of_another_provider_is_rejected(
    mine: str, other: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "other").mkdir()
    rot = PROVIDERS[mine](tmp_path / "mine", request)[0]
    foreign = PROVIDERS[other](tmp_path / "other", request)[0]
    with pytest.raises(RootOfTrustError):
        rot.unwrap_root_key(foreign.wrap_root_key(ROOT_KEY))


def test_thread_safety(rot: RootOfTrust) -> None:
    keys = [os.urandom(32) for _ in range(8)]
    errors: list[BaseException] = []
    wrapped_ok = [rot.wrap_root_key(k) for k in keys]
    bad = bytearray(wrapped_ok[0])
    bad[-1] ^= 1

    def work(i: int) -> None:
        try:
            for _ in range(25):
                key = keys[i]
                assert rot.unwrap_root_key(rot.wrap_root_key(key)) == key
                assert rot.unwrap_root_key(wrapped_ok[i]) == key
                with pytest.raises(RootOfTrustError):
                    rot.unwrap_root_key(bytes(bad))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(keys))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors


def test_repr_and_pickle_reveal_nothing(rot: RootOfTrust) -> None:
    wrapped = rot.wrap_root_key(ROOT_KEY)
    text = repr(rot) + str(rot) + repr(rot.health())
    assert USER_PIN not in text
    assert ROOT_KEY.hex() not in text and wrapped.hex() not in text
    for secret_attr in ("_kek",):
        value = getattr(rot, secret_attr, None)
        if isinstance(value, bytes):
            assert value.hex() not in text
    with pytest.raises(TypeError):
        pickle.dumps(rot)


def test_health(rot: RootOfTrust) -> None:
    health = rot.health()
    assert health["name"] == rot.name
    assert health["ok"] is True
    import json

    json.dumps(health)  # JSON-serialisable
