"""End to end with real servers: pkcs11 (SoftHSM2) deployments, root-key rotation while serving,
file -> pkcs11 migration, "the database and data directory alone reveal nothing", token faults."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from tests.conftest import client
from tests.integration.test_import import wrap
from tests.support.servers import OPENKMS, TEST_ACCOUNT, Deployment, ServerProcess
from tests.support.softhsm import USER_PIN, SoftHsm

pytestmark = pytest.mark.slow


@pytest.fixture
def hsm(tmp_path: Path) -> SoftHsm:
    hsm = SoftHsm(tmp_path / "hsm")
    hsm.init_token("openkms")
    return hsm


def pkcs11_env(hsm: SoftHsm, pin: str = USER_PIN) -> dict[str, str]:
    return {
        **hsm.env(),
        "OPENKMS_ROOT_OF_TRUST_PROVIDER": "pkcs11",
        "OPENKMS_ROOT_OF_TRUST_PKCS11_TOKEN_LABEL": "openkms",
        "OPENKMS_ROOT_OF_TRUST_PKCS11_PIN": pin,
    }


def deploy(data_dir: Path, env: dict[str, str]) -> Deployment:
    deployment = Deployment(data_dir, extra_env=env)
    deployment.init()
    deployment.add_access_key(TEST_ACCOUNT, "test", "test")
    return deployment


@pytest.fixture
def started() -> Iterator[list[ServerProcess]]:
    servers: list[ServerProcess] = []
    yield servers
    for s in servers:
        s.stop()


def start(deployment: Deployment, servers: list[ServerProcess], workers: int = 1) -> object:
    server = ServerProcess(deployment, workers=workers)
    servers.append(server)
    return client(server.url)


def status(deployment: Deployment) -> dict[str, object]:
    result = deployment.cli("operator", "status", "--json", check=False)
    report: dict[str, object] = json.loads(result.stdout)
    report["exit"] = result.returncode
    return report


def test_pkcs11_deployment_survives_restart(
    tmp_path: Path, hsm: SoftHsm, started: list[ServerProcess]
) -> None:
    deployment = deploy(tmp_path / "data", pkcs11_env(hsm))
    assert not (tmp_path / "data" / "root.key").exists()  # no key file: the token holds the key
    kms = start(deployment, started)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    hmac_id = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"secret", EncryptionContext={"a": "b"})["CiphertextBlob"]
    mac = kms.generate_mac(KeyId=hmac_id, Message=b"m", MacAlgorithm="HMAC_SHA_256")["Mac"]
    started.pop().stop()
    kms = start(deployment, started, workers=2)  # forked workers initialize the module again
    for _ in range(6):  # reach both workers
        assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "b"})["Plaintext"] == b"secret"
    assert kms.verify_mac(KeyId=hmac_id, Message=b"m", MacAlgorithm="HMAC_SHA_256", Mac=mac)["MacValid"]
    report = status(deployment)
    assert report["provider"] == "pkcs11" and report["exit"] == 0
    assert report["health"] == {
        "name": "pkcs11",
        "ok": True,
        "module": "/usr/lib/softhsm/libsofthsm2.so",
        "token": "openkms",
        "key_label": "openkms-root-key",
    }
    assert report["root_key_version"] == 1 and report["sealed"] is None


def test_rotation_and_migration_while_serving(
    tmp_path: Path, hsm: SoftHsm, started: list[ServerProcess]
) -> None:
    deployment = deploy(tmp_path / "data", {})  # file provider
    kms = start(deployment, started)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    unused = kms.create_key()["KeyMetadata"]["KeyId"]  # its material is never unwrapped before rotation
    before = kms.encrypt(KeyId=key_id, Plaintext=b"before rotation")["CiphertextBlob"]
    # values handed to the client before the rotation and brought back after it
    grantee = f"arn:aws:iam::{TEST_ACCOUNT}:root"
    old_grant = kms.create_grant(KeyId=key_id, GranteePrincipal=grantee, Operations=["Encrypt"])
    external = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    params = kms.get_parameters_for_import(
        KeyId=external, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048"
    )
    marker = kms.list_keys(Limit=1)["NextMarker"]

    out = deployment.cli("operator", "rotate-root-key").stdout
    assert "root key version 2 created" in out and "2 key material(s)" in out
    report = status(deployment)
    assert report["root_key_version"] == 2 and report["rewrap_pending"] == 0
    versions = {v["version"]: v["secrets"] for v in report["root_key_versions"]}  # type: ignore[attr-defined]
    assert versions[1] == 0 and versions[2] >= 4  # 2 materials, 2 access keys, audit signing key

    # the running server keeps serving: old blobs, re-wrapped materials (v2, fetched on demand), new keys
    assert kms.decrypt(CiphertextBlob=before)["Plaintext"] == b"before rotation"
    assert kms.encrypt(KeyId=unused, Plaintext=b"x")["KeyId"].endswith(unused)
    new_key = kms.create_key()["KeyMetadata"]["KeyId"]
    after_rotation = kms.encrypt(KeyId=new_key, Plaintext=b"after rotation")["CiphertextBlob"]
    # the server adopted v2 for its own writes, so nothing new lands under v1
    assert status(deployment)["rewrap_pending"] == 0
    # tokens sealed and markers made under v1 still work, and new ones are made under v2 without error
    grant = kms.create_grant(KeyId=key_id, GranteePrincipal=grantee, Operations=["Encrypt"])
    for token in (old_grant["GrantToken"], grant["GrantToken"]):
        kms.encrypt(KeyId=key_id, Plaintext=b"x", GrantTokens=[token])
    kms.import_key_material(
        KeyId=external,
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=wrap("RSAES_OAEP_SHA_256", params["PublicKey"], os.urandom(32)),
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )
    assert kms.describe_key(KeyId=external)["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.list_keys(Limit=1, Marker=marker)["Keys"]

    # file -> pkcs11, the server still running on the old configuration
    pin_file = hsm.write_pin_file(tmp_path / "pin")
    deployment.extra_env.update(hsm.env())
    out = deployment.cli(
        "operator",
        "migrate-root-of-trust",
        "--to",
        "pkcs11",
        "--token-label",
        "openkms",
        "--pin-file",
        str(pin_file),
    ).stdout
    assert "[1, 2] now protected by the 'pkcs11' provider" in out and 'provider = "pkcs11"' in out
    assert kms.decrypt(CiphertextBlob=after_rotation)["Plaintext"] == b"after rotation"
    # a node still configured for the file provider now refuses to start, naming the fix
    refused = deployment.cli("operator", "status", "--json", check=False)
    assert refused.returncode == 1 and "migrate-root-of-trust" in refused.stdout

    started.pop().stop()
    deployment.extra_env.update(
        {
            "OPENKMS_ROOT_OF_TRUST_PROVIDER": "pkcs11",
            "OPENKMS_ROOT_OF_TRUST_PKCS11_TOKEN_LABEL": "openkms",
            "OPENKMS_ROOT_OF_TRUST_PKCS11_PIN_FILE": str(pin_file),
        }
    )
    (tmp_path / "data" / "root.key").unlink()  # the old key file is retired
    kms = start(deployment, started)
    assert kms.decrypt(CiphertextBlob=before)["Plaintext"] == b"before rotation"
    assert kms.decrypt(CiphertextBlob=after_rotation)["Plaintext"] == b"after rotation"
    # and a rotation under pkcs11
    deployment.cli("operator", "rotate-root-key")
    assert kms.decrypt(CiphertextBlob=before)["Plaintext"] == b"before rotation"
    report = status(deployment)
    assert report["root_key_version"] == 3 and report["rewrap_pending"] == 0 and report["exit"] == 0

    # and back: pkcs11 -> a new key file
    new_file = tmp_path / "new-root.key"
    out = deployment.cli(
        "operator", "migrate-root-of-trust", "--to", "file", "--key-file", str(new_file)
    ).stdout
    assert "[1, 2, 3] now protected by the 'file' provider" in out
    assert new_file.stat().st_mode & 0o777 == 0o600
    started.pop().stop()
    for name in ("PROVIDER", "PKCS11_TOKEN_LABEL", "PKCS11_PIN_FILE"):
        deployment.extra_env.pop(f"OPENKMS_ROOT_OF_TRUST_{name}")
    deployment.extra_env["OPENKMS_ROOT_OF_TRUST_KEY_FILE"] = str(new_file)
    hsm.remove_tokens()  # the token is no longer needed
    kms = start(deployment, started)
    assert kms.decrypt(CiphertextBlob=before)["Plaintext"] == b"before rotation"
    assert kms.decrypt(CiphertextBlob=after_rotation)["Plaintext"] == b"after rotation"


def _all_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


@pytest.mark.parametrize("provider", ["file", "pkcs11"])
def test_database_and_data_directory_alone_reveal_nothing(
    tmp_path: Path, hsm: SoftHsm, started: list[ServerProcess], provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = pkcs11_env(hsm) if provider == "pkcs11" else {}
    deployment = deploy(tmp_path / "data", env)
    kms = start(deployment, started)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"the secret")["CiphertextBlob"]
    started.pop().stop()

    # The thief's copy: database and data directory, without the token or the key file.
    stolen = tmp_path / "stolen"
    shutil.copytree(tmp_path / "data", stolen)
    (stolen / "root.key").unlink(missing_ok=True)
    (stolen / "bootstrap-credentials").unlink()  # an operator secret, not part of the data at rest
    empty_hsm = SoftHsm(tmp_path / "thief-hsm")  # a SoftHSM2 without the token
    thief_env = {**env, **empty_hsm.env()}

    # 1. the server refuses to start (non-zero exit, clear message) instead of serving without keys
    import subprocess

    thief = Deployment(stolen, extra_env=thief_env)
    result = subprocess.run(
        [*OPENKMS, "server", "--port", "0"], env=thief.env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    expected = "was not found" if provider == "pkcs11" else "does not exist"
    assert expected in result.stderr + result.stdout
    assert "Traceback" not in result.stderr

    # 2. a direct read: the plaintext, the key material and the root key appear nowhere in the copy
    from openkms.app import load_keyring, open_store
    from openkms.config import load_settings

    real = load_settings(environ=deployment.env())
    monkeypatch.setenv("SOFTHSM2_CONF", str(hsm.conf))
    store = open_store(real)
    try:
        keyring = load_keyring(real, store)
        with store.read() as tx:
            material = tx.list_materials(TEST_ACCOUNT, key_id)[0]
            root_record = tx.latest_root_key()
    finally:
        store.close()
    assert material.ekt is not None and root_record is not None
    secret = keyring.unwrap_material(
        TEST_ACCOUNT,
        key_id,
        material.material_id,
        "SYMMETRIC_DEFAULT",
        material.ekt,
        material.root_key_version,
    )
    root_key = keyring._root_keys[1]
    everything = _all_bytes(stolen)
    for needle in (b"the secret", secret, root_key):
        for form in (needle, needle.hex().encode(), __import__("base64").b64encode(needle)):
            assert form not in everything
    # 3. the wrapped values do not open with anything the copy holds: every 32-byte window of every file
    #    tried as the key-encryption key of the file provider (what a key file would be)
    from openkms.rootoftrust import RootOfTrustError
    from openkms.rootoftrust.file import FileRootOfTrust

    wrapped = bytes(root_record.wrapped)
    db = sqlite3.connect(stolen / "openkms.db")
    try:
        rows = [bytes(r[0]) for r in db.execute("SELECT wrapped FROM root_keys")]
    finally:
        db.close()
    assert wrapped in rows
    candidates = {everything[i : i + 32] for i in range(0, len(everything) - 31, 16)}
    for candidate in candidates:
        with pytest.raises(RootOfTrustError):
            FileRootOfTrust(candidate).unwrap_root_key(wrapped)
    assert len(blob) > 0


def test_token_removed_and_pin_changed_while_serving(
    tmp_path: Path, hsm: SoftHsm, started: list[ServerProcess]
) -> None:
    deployment = deploy(tmp_path / "data", pkcs11_env(hsm))
    kms = start(deployment, started)
    warm = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=warm, Plaintext=b"warm")["CiphertextBlob"]
    cold = kms.create_key()["KeyMetadata"]["KeyId"]  # never unwrapped by the server
    # every secret is now under root key v2, which the running server has not fetched yet
    deployment.cli("operator", "rotate-root-key")

    hsm.remove_tokens()
    try:
        # the request needs root key v2 from the absent token: a clean error, never a wrong answer
        with pytest.raises(ClientError) as info:
            kms.decrypt(CiphertextBlob=blob)
        assert info.value.response["Error"]["Code"] == "KMSInternalException"
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        report = status(deployment)
        assert report["exit"] == 1 and report["health"]["ok"] is False  # type: ignore[index]
        assert "PKCS#11 token 'openkms'" in str(report["health"]["error"])  # type: ignore[index]
        # a new server does not start without its token
        failed = deployment.cli("server", "--port", "0", check=False)
        assert failed.returncode != 0 and "PKCS#11 token 'openkms'" in failed.stderr
        assert "Traceback" not in failed.stderr
    finally:
        hsm.restore_tokens()
    # reconnects on next use
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"warm"
    assert status(deployment)["exit"] == 0

    # once unwrapped, keys are served from memory: the HSM is not on the hot path
    hsm.remove_tokens()
    try:
        fresh = kms.encrypt(KeyId=cold, Plaintext=b"x")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=fresh)["Plaintext"] == b"x"
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"warm"
    finally:
        hsm.restore_tokens()

    # PIN changed by the HSM administrator: the running server keeps serving; a restart with the old PIN
    # fails cleanly; the new PIN makes it start again
    hsm.change_pin("openkms", USER_PIN, "24682468")
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"warm"
    started.pop().stop()
    failed = deployment.cli("server", "--port", "0", check=False)
    assert failed.returncode != 0 and "PIN" in failed.stderr and "rejected" in failed.stderr
    assert USER_PIN not in failed.stderr and USER_PIN not in failed.stdout
    deployment.extra_env["OPENKMS_ROOT_OF_TRUST_PKCS11_PIN"] = "24682468"
    kms = start(deployment, started)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"warm"


def test_pin_is_never_taken_from_the_command_line_or_toml(tmp_path: Path, hsm: SoftHsm) -> None:
    config = tmp_path / "openkms.toml"
    config.write_text('[root_of_trust]\nprovider = "pkcs11"\npkcs11_pin = "1234"\n', encoding="utf-8")
    deployment = Deployment(tmp_path / "data", extra_env=hsm.env())
    result = deployment.cli("--config", str(config), "init", check=False)
    assert result.returncode != 0 and "not allowed" in result.stderr
    assert "Traceback" not in result.stderr
    result = deployment.cli(
        "operator", "migrate-root-of-trust", "--to", "pkcs11", "--pin", "1234", check=False
    )
    assert result.returncode == 2 and "No such option" in result.stderr
