"""The pkcs11 provider against SoftHSM2: start-up errors, key attributes, faults while running, recovery."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.softhsm import MODULE, USER_PIN, SoftHsm

from openkms.rootoftrust import RootOfTrustError
from openkms.rootoftrust.pkcs11 import Pkcs11Config, Pkcs11RootOfTrust, pin_from_file, pin_value

ROOT_KEY = bytes(range(32))


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    hsm = SoftHsm(tmp_path_factory.mktemp("softhsm"))
    old = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(hsm.conf)
    yield hsm
    if old is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = old


def _config(token: str, pin: str = USER_PIN, key: str = "root") -> Pkcs11Config:
    return Pkcs11Config(MODULE, token, key, pin_value(pin))


def test_missing_module_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RootOfTrustError, match=r"module .*nope\.so does not exist"):
        Pkcs11RootOfTrust(Pkcs11Config(str(tmp_path / "nope.so"), "t", "k", pin_value("1")))


def test_missing_token_is_a_clear_error(hsm: SoftHsm) -> None:
    with pytest.raises(RootOfTrustError, match=r"token 'no-such-token'.*was not found"):
        Pkcs11RootOfTrust(_config("no-such-token"), create_key=True)


def test_wrong_pin_is_a_clear_error_without_the_pin(hsm: SoftHsm) -> None:
    hsm.init_token("wrongpin")
    with pytest.raises(RootOfTrustError, match=r"PIN .* was rejected") as info:
        Pkcs11RootOfTrust(_config("wrongpin", pin="00000000"), create_key=True)
    assert "00000000" not in str(info.value)


def test_missing_key_without_create_is_a_clear_error(hsm: SoftHsm) -> None:
    hsm.init_token("nokey")
    with pytest.raises(RootOfTrustError, match="no AES key labelled 'root'"):
        Pkcs11RootOfTrust(_config("nokey"))


def test_key_is_generated_non_extractable_and_found_again(hsm: SoftHsm) -> None:
    import pkcs11
    from pkcs11 import Attribute

    hsm.init_token("gen")
    first = Pkcs11RootOfTrust(_config("gen"), create_key=True)
    wrapped = first.wrap_root_key(ROOT_KEY)
    again = Pkcs11RootOfTrust(_config("gen"))  # found by label, not generated again
    assert again.unwrap_root_key(wrapped) == ROOT_KEY
    session = pkcs11.lib(MODULE).get_token(token_label="gen").open()
    keys = list(session.get_objects({Attribute.LABEL: "root"}))
    assert len(keys) == 1
    key = keys[0]
    assert key[Attribute.SENSITIVE] is True
    assert key[Attribute.EXTRACTABLE] is False
    assert key[Attribute.NEVER_EXTRACTABLE] is True
    with pytest.raises(pkcs11.exceptions.PKCS11Error):
        key[Attribute.VALUE]


def test_an_extractable_key_is_refused(hsm: SoftHsm) -> None:
    import pkcs11
    from pkcs11 import Attribute, KeyType

    hsm.init_token("extractable")
    # the provider's own login session makes this one share the login
    Pkcs11RootOfTrust(_config("extractable", key="other"), create_key=True)
    session = pkcs11.lib(MODULE).get_token(token_label="extractable").open(rw=True)
    session.generate_key(
        KeyType.AES,
        256,
        label="weak",
        store=True,
        template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True},
    )
    with pytest.raises(RootOfTrustError, match="extractable"):
        Pkcs11RootOfTrust(_config("extractable", key="weak"))


def test_pin_file(hsm: SoftHsm, tmp_path: Path) -> None:
    hsm.init_token("pinfile")
    path = hsm.write_pin_file(tmp_path / "pin")
    rot = Pkcs11RootOfTrust(Pkcs11Config(MODULE, "pinfile", "root", pin_from_file(path)), create_key=True)
    assert rot.unwrap_root_key(rot.wrap_root_key(ROOT_KEY)) == ROOT_KEY
    path.chmod(0o644)
    with pytest.raises(RootOfTrustError, match="must not be accessible by group or others"):
        pin_from_file(path)()


def test_token_removed_while_running_then_restored(hsm: SoftHsm) -> None:
    hsm.init_token("removable")
    rot = Pkcs11RootOfTrust(_config("removable"), create_key=True)
    wrapped = rot.wrap_root_key(ROOT_KEY)
    hsm.remove_tokens()
    try:
        for _ in range(3):  # clean errors, every time; never wrong bytes
            with pytest.raises(RootOfTrustError, match="removable"):
                rot.unwrap_root_key(wrapped)
        assert rot.health()["ok"] is False
    finally:
        hsm.restore_tokens()
    # reconnects on next use
    assert rot.unwrap_root_key(wrapped) == ROOT_KEY
    assert rot.health()["ok"] is True


def test_pin_changed_while_running(hsm: SoftHsm, tmp_path: Path) -> None:
    hsm.init_token("pinchange")
    path = hsm.write_pin_file(tmp_path / "pin")
    rot = Pkcs11RootOfTrust(Pkcs11Config(MODULE, "pinchange", "root", pin_from_file(path)), create_key=True)
    wrapped = rot.wrap_root_key(ROOT_KEY)
    hsm.change_pin("pinchange", USER_PIN, "11112222")
    # the logged-in sessions keep working; a reconnection (forced by pulling the token) needs the new PIN
    assert rot.unwrap_root_key(wrapped) == ROOT_KEY
    hsm.remove_tokens()
    with pytest.raises(RootOfTrustError):
        rot.unwrap_root_key(wrapped)
    hsm.restore_tokens()
    with pytest.raises(RootOfTrustError, match=r"PIN .* was rejected"):
        rot.unwrap_root_key(wrapped)
    hsm.write_pin_file(path, "11112222")  # the operator updates the PIN file: no restart needed
    assert rot.unwrap_root_key(wrapped) == ROOT_KEY
