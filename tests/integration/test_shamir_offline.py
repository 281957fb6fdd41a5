"""Offline commands and root-of-trust migration on shamir deployments, with real ``openkms`` processes.

file -> shamir migration (servers keep serving; after a restart the server is sealed, a quorum of the new
shares unseals it and old ciphertexts decrypt), shamir -> file with a quorum of shares, pkcs11 <-> shamir,
``operator rotate-root-key`` on shamir while a server serves, ``admin ...`` / ``jobs run`` / ``policy
simulate`` / ``audit public-key`` with shares, and bad shares (none, too few, duplicate, malformed,
damaged, foreign, wrong) refused without revealing anything and without changing anything.
"""

from __future__ import annotations

import json
import os
import pty
import re
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import BACKENDS, client, make_deployment
from tests.integration.test_shamir_e2e import ACCOUNT, Cluster, assert_sealed, health, init_shamir
from tests.support.servers import OPENKMS, TEST_ACCOUNT, Deployment, ServerProcess, drop_pg_schema

from openkms.rootoftrust.shamir import SHARE_PREFIX, Share


def cli(
    deployment: Deployment, *args: str, stdin: str = "", check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``openkms ARGS`` with ``stdin`` as standard input (a pipe, not a terminal)."""
    result = subprocess.run(
        [*OPENKMS, *args], input=stdin, env=deployment.env(), capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    if check and result.returncode != 0:
        raise AssertionError(f"openkms {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def share_files(tmp: Path, shares: list[str], *indexes: int) -> list[str]:
    """``--share-file`` arguments for the given share numbers (1-based), written to 0600 files."""
    args: list[str] = []
    for i in indexes:
        path = tmp / f"given-{i}.txt"
        path.write_text(shares[i - 1] + "\n")
        path.chmod(0o600)
        args += ["--share-file", str(path)]
    return args


def status(deployment: Deployment) -> dict[str, Any]:
    result = deployment.cli("operator", "status", "--json", check=False)
    report: dict[str, Any] = json.loads(result.stdout)
    report["exit"] = result.returncode
    return report


def read_share_dir(share_dir: Path, count: int) -> list[str]:
    shares = []
    for i in range(1, count + 1):
        path = share_dir / f"share-{i}.txt"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        shares.append(path.read_text().strip())
    assert all(s.startswith(SHARE_PREFIX) for s in shares) and len(set(shares)) == count
    return shares


@pytest.fixture(params=BACKENDS)
def file_deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    deployment = make_deployment(tmp_path, request.param)  # file provider, access key "test"
    yield deployment
    if deployment.schema:
        drop_pg_schema(deployment.schema)


@pytest.fixture(params=BACKENDS)
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    c = init_shamir(tmp_path, request.param)
    yield c
    if c.deployment.schema:
        drop_pg_schema(c.deployment.schema)


@pytest.fixture
def started() -> Iterator[list[ServerProcess]]:
    servers: list[ServerProcess] = []
    yield servers
    for s in servers:
        s.stop()


def start(deployment: Deployment, started: list[ServerProcess], workers: int = 1) -> ServerProcess:
    server = ServerProcess(deployment, workers=workers)
    started.append(server)
    return server


def test_file_to_shamir_migration_restart_unseal_decrypt(
    file_deployment: Deployment, tmp_path: Path, started: list[ServerProcess]
) -> None:
    deployment = file_deployment
    server = start(deployment, started)
    kms = client(server.url)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    before = kms.encrypt(KeyId=key_id, Plaintext=b"before rotation")["CiphertextBlob"]
    deployment.cli("operator", "rotate-root-key")  # two root-key versions to migrate
    middle = kms.encrypt(KeyId=key_id, Plaintext=b"before migration")["CiphertextBlob"]

    share_dir = tmp_path / "new-shares"
    out = deployment.cli(
        "operator",
        "migrate-root-of-trust",
        "--to",
        "shamir",
        "--shares",
        "4/2",
        "--share-dir",
        str(share_dir),
    ).stdout
    assert "4 shares, any 2 of which unseal" in out and "(mode 0600)" in out
    assert "[1, 2] now protected by the 'shamir' provider" in out and 'provider = "shamir"' in out
    assert "root.key is no longer needed" in out
    shares = read_share_dir(share_dir, 4)
    assert all(s not in out for s in shares)  # written, not printed
    # the running server keeps the root keys it holds: no downtime
    assert kms.decrypt(CiphertextBlob=middle)["Plaintext"] == b"before migration"
    after = kms.encrypt(KeyId=key_id, Plaintext=b"after migration")["CiphertextBlob"]
    # the old key file opens nothing any more; offline commands that need the root key ask for shares
    (deployment.data_dir / "root.key").unlink()
    refused = cli(deployment, "audit", "public-key", check=False)
    assert refused.returncode == 1 and "needs 2 of the 4 unseal shares" in refused.stderr
    assert "AKIA" in cli(deployment, "admin", "access-key", "list").stdout  # no secret: no shares

    started.pop().stop()
    deployment.extra_env["OPENKMS_ROOT_OF_TRUST_PROVIDER"] = "shamir"  # as the command printed
    server = start(deployment, started, workers=2)
    kms = client(server.url)
    shamir = Cluster(deployment, shares, "test", "test")
    assert_sealed(shamir, server, workers=2)
    assert "1 of 2" in shamir.unseal(shares[3]).stdout
    assert "openkms is unsealed" in shamir.unseal(shares[1]).stdout
    for blob, text in (
        (before, b"before rotation"),
        (middle, b"before migration"),
        (after, b"after migration"),
    ):
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == text
    report = status(deployment)
    assert report["provider"] == "shamir" and report["sealed"] is False and report["exit"] == 0
    assert [v["provider"] for v in report["root_key_versions"]] == ["shamir", "shamir"]


def test_shamir_to_file_with_a_quorum_of_shares(
    cluster: Cluster, tmp_path: Path, started: list[ServerProcess]
) -> None:
    deployment = cluster.deployment
    server = start(deployment, started)
    cluster.unseal(*cluster.shares[:3])
    kms = cluster.kms(server)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"under shamir")["CiphertextBlob"]
    new_key = tmp_path / "new-root.key"

    # without shares nothing happens, and the message says what to do
    refused = cli(deployment, "operator", "migrate-root-of-trust", "--to", "file", "--key-file", str(new_key),
                  check=False)  # fmt: skip
    assert refused.returncode == 1 and "--share-file" in refused.stderr and "3 of the 5" in refused.stderr
    assert not new_key.exists()
    assert status(deployment)["root_key_versions"][0]["provider"] == "shamir"

    stdin = "\n".join([cluster.shares[4], cluster.shares[0], cluster.shares[2]]) + "\n"
    out = cli(deployment, "operator", "migrate-root-of-trust", "--to", "file", "--key-file", str(new_key),
              stdin=stdin).stdout  # fmt: skip
    assert "[1] now protected by the 'file' provider" in out and f'key_file = "{new_key}"' in out
    assert "previous shares no longer unseal" in out
    assert stat.S_IMODE(new_key.stat().st_mode) == 0o600
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"under shamir"  # still serving

    started.pop().stop()
    deployment.extra_env.update(
        {"OPENKMS_ROOT_OF_TRUST_PROVIDER": "file", "OPENKMS_ROOT_OF_TRUST_KEY_FILE": str(new_key)}
    )
    server = start(deployment, started)
    assert health(server)[0] == 200  # not sealed: the key file opens the root key
    kms = cluster.kms(server)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"under shamir"
    report = status(deployment)
    assert report["provider"] == "file" and report["exit"] == 0 and report["sealed"] is None
    # offline commands need no shares any more
    assert cluster.access_key[:12] in deployment.cli("admin", "access-key", "list").stdout


def test_rotate_root_key_on_shamir_while_serving(
    cluster: Cluster, tmp_path: Path, started: list[ServerProcess]
) -> None:
    deployment = cluster.deployment
    server = start(deployment, started, workers=2)
    cluster.unseal(*cluster.shares[1:4])
    kms = cluster.kms(server)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    before = kms.encrypt(KeyId=key_id, Plaintext=b"before rotation")["CiphertextBlob"]

    errors: list[BaseException] = []
    stop = threading.Event()

    def traffic() -> None:  # requests keep succeeding while the secrets are re-wrapped
        worker = cluster.kms(server)
        while not stop.is_set():
            try:
                blob = worker.encrypt(KeyId=key_id, Plaintext=b"during")["CiphertextBlob"]
                assert worker.decrypt(CiphertextBlob=blob)["Plaintext"] == b"during"
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)
                return

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        time.sleep(0.3)
        out = deployment.cli(
            "operator", "rotate-root-key", *share_files(tmp_path, cluster.shares, 5, 1, 3)
        ).stdout
        assert "root key version 2 created and current" in out and "1 key material(s)" in out
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join(30)
    assert not errors, errors
    assert kms.decrypt(CiphertextBlob=before)["Plaintext"] == b"before rotation"
    after = kms.encrypt(KeyId=key_id, Plaintext=b"after rotation")["CiphertextBlob"]
    report = status(deployment)
    assert report["root_key_version"] == 2 and report["rewrap_pending"] == 0 and report["sealed"] is False
    assert {v["version"]: v["secrets"] for v in report["root_key_versions"]}[1] == 0

    # a restart seals; any quorum still unseals (every version is under the same unseal key)
    started.pop().stop()
    server = start(deployment, started)
    assert_sealed(cluster, server)
    cluster.unseal(cluster.shares[0], cluster.shares[4], cluster.shares[2])
    kms = cluster.kms(server)
    assert kms.decrypt(CiphertextBlob=before)["Plaintext"] == b"before rotation"
    assert kms.decrypt(CiphertextBlob=after)["Plaintext"] == b"after rotation"


def test_admin_and_jobs_on_shamir_with_shares(
    cluster: Cluster, tmp_path: Path, started: list[ServerProcess]
) -> None:
    deployment = cluster.deployment
    server = start(deployment, started)
    cluster.unseal(*cluster.shares[2:])
    # a quorum in one file (one share per line), given to a command of the admin group
    both = tmp_path / "quorum.txt"
    both.write_text("\n".join(cluster.shares[:3]) + "\n")
    out = deployment.cli(
        "admin", "access-key", "create", "--account", ACCOUNT, "--root", "--share-file", str(both)
    )
    access_key = re.search(r"aws_access_key_id\s+= (\S+)", out.stdout)
    secret = re.search(r"aws_secret_access_key = (\S+)", out.stdout)
    assert access_key and secret
    # the running, unsealed server accepts the new credential at once
    kms = client(server.url, access_key.group(1), secret.group(1))
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Enabled"]
    # shares on standard input; other command groups
    stdin = cluster.shares[4] + "\n" + cluster.shares[1] + "\n" + cluster.shares[0] + "\n"
    listed = cli(deployment, "admin", "list-access-keys", stdin=stdin).stdout
    assert access_key.group(1)[:10] in listed
    cli(deployment, "admin", "user", "create", "alice", "--account", ACCOUNT, stdin=stdin)
    jobs = cli(deployment, "jobs", "run", stdin=stdin).stdout
    assert "rotated 0 key(s)" in jobs
    simulated = cli(deployment, "policy", "simulate", "--principal", f"arn:aws:iam::{ACCOUNT}:root",
                    "--action", "kms:Encrypt", "--key", key_id, stdin=stdin, check=False)  # fmt: skip
    assert simulated.returncode == 0 and "ALLOWED" in simulated.stdout, simulated.stderr
    pem = cli(deployment, "audit", "public-key", stdin=stdin).stdout
    assert "BEGIN PUBLIC KEY" in pem
    # without shares: a clear refusal saying what to do, from each command that needs the root key
    needs_root = (
        ("admin", "access-key", "create", "--account", ACCOUNT, "--root"),
        ("admin", "seed", str(tmp_path / "seed.toml")),
        ("jobs", "run"),
        ("operator", "rotate-root-key"),
        ("audit", "public-key"),
    )
    (tmp_path / "seed.toml").write_text("")
    for args in needs_root:
        refused = cli(deployment, *args, check=False)
        assert refused.returncode == 1 and "--share-file" in refused.stderr, args
        assert "Traceback" not in refused.stderr
    assert status(deployment)["root_key_version"] == 1  # the refused rotation did nothing
    # ... and none from those that read or write no secret
    cli(deployment, "admin", "user", "create", "bob", "--account", ACCOUNT)
    document = (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"*"}]}'
    )
    cli(deployment, "admin", "policy", "put", "--account", ACCOUNT, "--user", "bob", "--name", "p", "-",
        stdin=document)  # fmt: skip
    cli(deployment, "admin", "tag", "add", "--account", ACCOUNT, "--user", "bob", "team=a")
    assert "bob" in cli(deployment, "admin", "user", "list").stdout
    assert "team" in cli(deployment, "admin", "tag", "list", "--account", ACCOUNT, "--user", "bob").stdout
    assert access_key.group(1)[:10] in cli(deployment, "admin", "access-key", "list").stdout  # (a table)
    simulated = cli(deployment, "policy", "simulate", "--principal", f"arn:aws:iam::{ACCOUNT}:root",
                    "--action", "kms:Encrypt", "--key", key_id, check=False)  # fmt: skip
    assert simulated.returncode == 0 and "ALLOWED" in simulated.stdout, simulated.stderr
    cli(deployment, "admin", "access-key", "delete", access_key.group(1))
    assert access_key.group(1)[:10] not in cli(deployment, "admin", "list-access-keys").stdout


def test_offline_commands_refuse_bad_shares(tmp_path: Path) -> None:
    cluster = init_shamir(tmp_path, "sqlite")
    deployment = cluster.deployment
    foreign = init_shamir(tmp_path / "other", "sqlite").shares
    good = cluster.shares
    damaged = good[1][:20] + ("a" if good[1][20] != "a" else "b") + good[1][21:]
    wrong = Share.decode(good[2])
    wrong_text = Share(wrong.index, wrong.threshold, wrong.cluster_id, bytes(32)).encode()
    cases = [
        ([], "needs 3 of the 5 unseal shares"),
        ([good[0], good[1]], "only 2 of the 3 shares"),
        ([good[0], good[0], good[1]], "already accepted"),
        (["not a share", good[0], good[1]], "not an openkms share"),
        ([good[0], damaged, good[2]], "checksum mismatch"),
        ([good[0], good[1][:-5], good[2]], "malformed share"),
        ([good[0], foreign[1], good[2]], "another openkms cluster"),
        ([good[0], good[1], wrong_text], "do not reconstruct"),
    ]
    commands = [
        ("admin", "access-key", "create", "--account", ACCOUNT, "--root"),
        ("operator", "rotate-root-key"),
        ("operator", "migrate-root-of-trust", "--to", "shamir", "--shares", "3/2", "--share-dir",
         str(tmp_path / "void")),
        ("operator", "migrate-root-of-trust", "--to", "file", "--key-file", str(tmp_path / "void.key")),
    ]  # fmt: skip
    for command in commands:
        for shares, reason in cases:
            result = cli(deployment, *command, stdin="".join(s + "\n" for s in shares), check=False)
            assert result.returncode == 1, (command, reason, result.stdout)
            assert reason in result.stderr, (command, reason, result.stderr)
            assert "nothing was done" in result.stderr or not shares
            for secret in good + foreign:  # nothing of any share is echoed
                assert secret[len(SHARE_PREFIX) + 4 :] not in result.stdout + result.stderr
    # nothing changed: one root-key version, still under the same split, no new share, no key file
    assert not (tmp_path / "void").exists() and not (tmp_path / "void.key").exists()
    listed = cli(deployment, "admin", "access-key", "list", stdin="\n".join(good[2:]) + "\n").stdout
    assert listed.count("AKIA") == 1  # the bootstrap credential only
    # a sealed server has no root key to apply a seed file with: refused, naming the offline command
    seed = tmp_path / "seed.toml"
    seed.write_text("")
    seeded = cli(deployment, "server", "--port", "0", "--seed", str(seed), check=False)
    assert seeded.returncode == 1 and "openkms admin seed" in seeded.stderr
    server = ServerProcess(deployment)
    try:
        assert status(deployment)["root_key_version"] == 1
        cluster.unseal(*good[:3])
        assert health(server)[0] == 200
    finally:
        assert server.stop() == 0


def test_reshare_shamir_to_shamir(tmp_path: Path) -> None:
    cluster = init_shamir(tmp_path, "sqlite")
    deployment = cluster.deployment
    share_dir = tmp_path / "reshared"
    stdin = "\n".join(cluster.shares[:3]) + "\n"
    out = cli(deployment, "operator", "migrate-root-of-trust", "--to", "shamir", "--shares", "3/2",
              stdin=stdin).stdout  # fmt: skip
    printed = re.findall(r"share \d: (okms-share-1-\S+)", out)  # without --share-dir: printed once
    assert len(printed) == 3 and "Shown once" in out
    # the old shares are of an earlier split now; the new ones work
    old = cli(deployment, "audit", "public-key", stdin=stdin, check=False)
    assert old.returncode == 1 and "another openkms cluster" in old.stderr
    assert "PUBLIC KEY" in cli(deployment, "audit", "public-key", stdin=printed[2] + "\n" + printed[0]).stdout
    # a share dir that would overwrite a share is refused before anything happens
    share_dir.mkdir()
    (share_dir / "share-2.txt").write_text("keep me")
    blocked = cli(deployment, "operator", "migrate-root-of-trust", "--to", "shamir", "--shares", "2/2",
                  "--share-dir", str(share_dir), stdin=printed[0] + "\n" + printed[1] + "\n",
                  check=False)  # fmt: skip
    assert blocked.returncode == 1 and "refusing to overwrite" in blocked.stderr
    assert (share_dir / "share-2.txt").read_text() == "keep me"
    assert "PUBLIC KEY" in cli(deployment, "audit", "public-key", stdin=printed[1] + "\n" + printed[2]).stdout
    usage = cli(deployment, "operator", "migrate-root-of-trust", "--to", "shamir", check=False)
    assert usage.returncode == 2 and "--shares" in usage.stderr


def test_offline_command_prompts_for_shares_without_echo(tmp_path: Path) -> None:
    cluster = init_shamir(tmp_path, "sqlite")
    pid, fd = pty.fork()  # a terminal, as an operator has
    if pid == 0:  # pragma: no cover - the child process
        os.execve(OPENKMS[0], [*OPENKMS, "audit", "public-key"], cluster.deployment.env())
    output = b""
    deadline = time.monotonic() + 60
    for k, share in enumerate(cluster.shares[1:4], start=1):
        while f"share {k} of 3".encode() not in output and time.monotonic() < deadline:
            output += os.read(fd, 1024)
        os.write(fd, share.encode() + b"\n")
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    _, status_code = os.waitpid(pid, 0)
    os.close(fd)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status_code) == 0, text
    assert "enter 3 of the 5 shares" in text and "input hidden" in text and "BEGIN PUBLIC KEY" in text
    for share in cluster.shares:
        assert share[len(SHARE_PREFIX) : len(SHARE_PREFIX) + 16] not in text


@pytest.mark.slow
def test_pkcs11_to_shamir_and_back(tmp_path: Path, started: list[ServerProcess]) -> None:
    from tests.support.softhsm import USER_PIN, SoftHsm

    hsm = SoftHsm(tmp_path / "hsm")
    hsm.init_token("openkms")
    env = {
        **hsm.env(),
        "OPENKMS_ROOT_OF_TRUST_PROVIDER": "pkcs11",
        "OPENKMS_ROOT_OF_TRUST_PKCS11_TOKEN_LABEL": "openkms",
        "OPENKMS_ROOT_OF_TRUST_PKCS11_PIN": USER_PIN,
    }
    deployment = Deployment(tmp_path / "data", extra_env=env)
    deployment.init()
    deployment.add_access_key(TEST_ACCOUNT, "test", "test")
    kms = client(start(deployment, started).url)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"from the token")["CiphertextBlob"]
    out = deployment.cli("operator", "migrate-root-of-trust", "--to", "shamir", "--shares", "2/2").stdout
    shares = re.findall(r"share \d: (okms-share-1-\S+)", out)
    assert len(shares) == 2 and "now protected by the 'shamir' provider" in out
    started.pop().stop()
    deployment.extra_env["OPENKMS_ROOT_OF_TRUST_PROVIDER"] = "shamir"
    server = start(deployment, started)
    shamir = Cluster(deployment, shares, "test", "test")
    assert_sealed(shamir, server)
    shamir.unseal(*shares)
    assert client(server.url).decrypt(CiphertextBlob=blob)["Plaintext"] == b"from the token"
    # and back into the token, with the shares
    deployment.extra_env["OPENKMS_ROOT_OF_TRUST_PROVIDER"] = "pkcs11"
    out = cli(deployment, "operator", "migrate-root-of-trust", "--to", "pkcs11", "--token-label", "openkms",
              stdin="\n".join(shares) + "\n").stdout  # fmt: skip
    assert "now protected by the 'pkcs11' provider" in out
    started.pop().stop()
    kms = client(start(deployment, started).url)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"from the token"
