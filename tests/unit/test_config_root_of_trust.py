"""config: the root_of_trust section, and the rule that the PKCS#11 PIN never comes from a flag or a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from openkms.config import ConfigError, load_settings

PKCS11 = {
    "OPENKMS_ROOT_OF_TRUST_PROVIDER": "pkcs11",
    "OPENKMS_ROOT_OF_TRUST_PKCS11_TOKEN_LABEL": "tok",
}


def test_defaults() -> None:
    r = load_settings(environ={}).root_of_trust
    assert (r.provider, r.pkcs11_module, r.pkcs11_key_label) == (
        "file",
        "/usr/lib/softhsm/libsofthsm2.so",
        "openkms-root-key",
    )


def test_pin_from_the_environment_is_kept_out_of_repr() -> None:
    settings = load_settings(environ={**PKCS11, "OPENKMS_ROOT_OF_TRUST_PKCS11_PIN": "s3cret-pin"})
    assert settings.root_of_trust.pkcs11_pin == "s3cret-pin"
    assert "s3cret-pin" not in repr(settings)


def test_pin_file_alternative(tmp_path: Path) -> None:
    settings = load_settings(environ={**PKCS11, "OPENKMS_ROOT_OF_TRUST_PKCS11_PIN_FILE": str(tmp_path / "p")})
    assert settings.root_of_trust.pkcs11_pin_file == str(tmp_path / "p")


def test_exactly_one_pin_source() -> None:
    with pytest.raises(ConfigError, match="exactly one of pkcs11_pin_file"):
        load_settings(environ=PKCS11)
    with pytest.raises(ConfigError, match="exactly one of pkcs11_pin_file"):
        load_settings(
            environ={
                **PKCS11,
                "OPENKMS_ROOT_OF_TRUST_PKCS11_PIN": "1",
                "OPENKMS_ROOT_OF_TRUST_PKCS11_PIN_FILE": "f",
            }
        )


def test_token_label_required() -> None:
    with pytest.raises(ConfigError, match="pkcs11_token_label"):
        load_settings(
            environ={"OPENKMS_ROOT_OF_TRUST_PROVIDER": "pkcs11", "OPENKMS_ROOT_OF_TRUST_PKCS11_PIN": "1"}
        )


def test_pin_in_the_toml_file_is_rejected(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[root_of_trust]\npkcs11_pin = "1234"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="not allowed") as info:
        load_settings(config, environ={})
    assert "1234" not in str(info.value)


def test_pin_as_an_override_is_rejected() -> None:
    with pytest.raises(ConfigError, match="cannot be given on the command line"):
        load_settings(environ=PKCS11, overrides={"root_of_trust.pkcs11_pin": "1234"})


def test_unknown_provider() -> None:
    with pytest.raises(ConfigError, match=r"root_of_trust\.provider"):
        load_settings(environ={"OPENKMS_ROOT_OF_TRUST_PROVIDER": "vault"})
