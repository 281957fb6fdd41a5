"""End to end with the shamir root of trust: real ``openkms`` processes, the operator CLI, boto3.

init --shamir 5/3 -> the server starts sealed (KMS calls and health say so) -> three operators unseal
through the CLI -> keys work -> a restart seals again -> another three shares unseal -> old ciphertexts
decrypt.  Sealing while serving, rejected shares, and what a copy of the data dir and database without
the shares gives away (nothing).
"""

from __future__ import annotations

import base64
import configparser
import http.client
import json
import os
import pty
import re
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from tests.conftest import BACKENDS, client, require_postgres
from tests.support.servers import OPENKMS, Deployment, ServerProcess, drop_pg_schema, new_pg_schema

from openkms.rootoftrust.shamir import SHARE_PREFIX, ShamirParams, ShamirRootOfTrust, Share

ACCOUNT = "123456789012"


class Cluster:
    def __init__(self, deployment: Deployment, shares: list[str], access_key: str, secret: str) -> None:
        self.deployment = deployment
        self.shares = shares
        self.access_key = access_key
        self.secret = secret

    def kms(self, server: ServerProcess) -> Any:
        return client(server.url, self.access_key, self.secret)

    def unseal(self, *shares: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``openkms operator unseal`` with the shares on standard input, one per line."""
        result = subprocess.run(
            [*OPENKMS, "operator", "unseal"],
            input="".join(s + "\n" for s in shares),
            env=self.deployment.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"unseal failed:\n{result.stdout}\n{result.stderr}")
        return result


def init_shamir(tmp: Path, backend: str, *args: str) -> Cluster:
    schema = None
    if backend == "postgres":
        require_postgres()
        schema = new_pg_schema()
    deployment = Deployment(tmp / "data", backend=backend, schema=schema)
    share_dir = tmp / "shares"
    result = deployment.cli(
        "init", "--account", ACCOUNT, "--shamir", "5/3", "--share-dir", str(share_dir), *args
    )
    assert "5 shares, any 3 of which unseal" in result.stdout
    shares = [(share_dir / f"share-{i}.txt").read_text().strip() for i in range(1, 6)]
    for i in range(1, 6):
        assert stat.S_IMODE((share_dir / f"share-{i}.txt").stat().st_mode) == 0o600
    assert all(s.startswith(SHARE_PREFIX) for s in shares) and len(set(shares)) == 5
    creds = configparser.ConfigParser()
    creds.read(deployment.data_dir / "bootstrap-credentials")
    return Cluster(
        deployment, shares, creds["openkms"]["aws_access_key_id"], creds["openkms"]["aws_secret_access_key"]
    )


@pytest.fixture(params=BACKENDS)
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    c = init_shamir(tmp_path, request.param)
    yield c
    if c.deployment.schema:
        drop_pg_schema(c.deployment.schema)


@pytest.fixture
def sqlite_cluster(tmp_path: Path) -> Cluster:
    return init_shamir(tmp_path, "sqlite")


def health(server: ServerProcess) -> tuple[int, dict[str, Any]]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", "/health")
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def progress(cluster: Cluster) -> str:
    """What ``openkms operator unseal`` reports when given no share."""
    return cluster.deployment.cli("operator", "unseal", "--share-file", os.devnull).stdout


def every_worker(server: ServerProcess, workers: int) -> set[tuple[int, bool]]:
    """(HTTP status, sealed) of /health over fresh connections until every worker has answered (the kernel
    spreads connections over the workers' SO_REUSEPORT sockets)."""
    seen: dict[int, tuple[int, bool]] = {}
    answers: set[tuple[int, bool]] = set()
    for i in range(200):
        status, body = health(server)
        seen[body["worker"]] = (status, body["sealed"])
        answers.add((status, body["sealed"]))
        if len(seen) == workers and i >= 8:
            break
    assert len(seen) == workers, seen
    return answers


def assert_sealed(cluster: Cluster, server: ServerProcess, tries: int = 1, workers: int = 1) -> None:
    status, body = health(server)
    assert status == 503 and body["sealed"] is True and body["status"] == "sealed"
    assert every_worker(server, workers) == {(503, True)}
    kms = cluster.kms(server)
    for _ in range(tries):
        with pytest.raises(botocore.exceptions.ClientError) as info:
            kms.list_keys()
        error = info.value.response
        assert error["Error"]["Code"] == "KMSInternalException"
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 500
        assert "sealed" in error["Error"]["Message"]


def test_init_unseal_restart_unseal_decrypt(cluster: Cluster) -> None:
    workers = 1 if cluster.deployment.backend == "sqlite" else 2
    server = ServerProcess(cluster.deployment, workers=workers)
    try:
        assert "openkms is sealed: unseal with 3 of 5 shares" in server.log
        assert_sealed(cluster, server, tries=4, workers=workers)  # every worker answers sealed
        report = cluster.deployment.cli("operator", "status", "--json", check=False)
        assert report.returncode == 1  # sealed: unhealthy for monitoring
        state = json.loads(report.stdout)
        assert state["provider"] == "shamir" and state["sealed"] is True
        assert state["health"]["threshold"] == 3 and state["health"]["progress"] == 0
        first = cluster.unseal(cluster.shares[0])
        assert "1 of 3 shares accepted" in first.stdout
        status = cluster.deployment.cli("operator", "unseal", "--share-file", os.devnull)
        assert "sealed: 1 of 3 shares accepted" in status.stdout  # no share given: just the progress
        assert_sealed(cluster, server, workers=workers)
        done = cluster.unseal(cluster.shares[2], cluster.shares[4])
        assert "2 of 3 shares accepted" in done.stdout and "openkms is unsealed" in done.stdout
        status_code, body = health(server)
        assert status_code == 200 and body["sealed"] is False
        assert every_worker(server, workers) == {(200, False)}
        report = cluster.deployment.cli("operator", "status", "--json")
        assert json.loads(report.stdout)["sealed"] is False and json.loads(report.stdout)["health"]["ok"]
        kms = cluster.kms(server)
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        blobs = [kms.encrypt(KeyId=key_id, Plaintext=b"secret %d" % i)["CiphertextBlob"] for i in range(4)]
    finally:
        assert server.stop() == 0

    server = ServerProcess(cluster.deployment, workers=workers)
    try:
        assert_sealed(cluster, server, tries=4, workers=workers)
        cluster.unseal(cluster.shares[3], cluster.shares[1], cluster.shares[0])
        assert every_worker(server, workers) == {(200, False)}
        kms = cluster.kms(server)
        for i, blob in enumerate(blobs * 2):  # several requests: every worker is unsealed
            answer = kms.decrypt(CiphertextBlob=blob)
            assert answer["Plaintext"] == b"secret %d" % (i % 4)
            assert answer["KeyId"].endswith(key_id)
    finally:
        assert server.stop() == 0
    assert not (cluster.deployment.data_dir / "control.sock").exists()


def test_seal_while_serving(sqlite_cluster: Cluster) -> None:
    cluster = sqlite_cluster
    cluster.deployment.extra_env["OPENKMS_JOBS_INTERVAL_SECONDS"] = "0.2"  # the master's loop runs too
    server = ServerProcess(cluster.deployment, workers=2)
    try:
        cluster.unseal(*cluster.shares[:3])
        kms = cluster.kms(server)
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        blob = kms.encrypt(KeyId=key_id, Plaintext=b"before")["CiphertextBlob"]
        sealed = cluster.deployment.cli("operator", "seal")
        assert "openkms is sealed" in sealed.stdout
        # the client's kept-alive connection and new ones alike: every worker has been replaced
        assert_sealed(cluster, server, tries=6, workers=2)
        assert "openkms was already sealed" in cluster.deployment.cli("operator", "seal").stdout
        # the seal reset nothing persistent: unsealing again gives the same keys back
        cluster.unseal(*cluster.shares[2:])
        assert every_worker(server, 2) == {(200, False)}
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"before"
        assert "replacing every worker" in server.log
        time.sleep(0.5)  # a few passes of the jobs loop, unsealed
    finally:
        assert server.stop() == 0
    assert "Traceback" not in server.log and "failed" not in server.log


def _worker_pids(server: ServerProcess) -> list[int]:
    pids = [int(p) for p in re.findall(r"worker \d+ started \(pid (\d+)\)", server.log)]
    return pids[-2:]  # the two most recent: the workers forked at the last unseal


def test_a_crashed_worker_comes_back_unsealed(sqlite_cluster: Cluster) -> None:
    cluster = sqlite_cluster
    server = ServerProcess(cluster.deployment, workers=2)
    try:
        cluster.unseal(*cluster.shares[1:4])
        kms = cluster.kms(server)
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        for pid in _worker_pids(server):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while server.log.count("restarting worker") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # the replacements fork after a short backoff
        for _ in range(6):
            assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Enabled"] is True
        assert health(server)[0] == 200
    finally:
        assert server.stop() == 0


def _run_unseal(cluster: Cluster, share: str) -> subprocess.CompletedProcess[str]:
    return cluster.unseal(share, check=False)


def test_wrong_duplicate_malformed_and_foreign_shares(sqlite_cluster: Cluster, tmp_path: Path) -> None:
    cluster = sqlite_cluster
    foreign = init_shamir(tmp_path / "other", "sqlite").shares
    server = ServerProcess(cluster.deployment)
    try:
        good = cluster.shares
        damaged = good[1][:20] + ("a" if good[1][20] != "a" else "b") + good[1][21:]
        wrong = Share.decode(good[2])
        wrong_text = Share(wrong.index, wrong.threshold, wrong.cluster_id, bytes(32)).encode()
        assert "1 of 3" in cluster.unseal(good[0]).stdout
        cases = [
            (good[0], "already accepted"),
            ("not a share", "not an openkms share"),
            (damaged, "checksum mismatch"),
            (good[1][:-5], "malformed share"),
            (foreign[1], "another openkms cluster"),
        ]
        for share, reason in cases:
            result = _run_unseal(cluster, share)
            assert result.returncode != 0
            assert reason in result.stdout
            assert "1 of 3" in progress(cluster)
            for secret in good:  # nothing of any share is echoed
                assert secret[len(SHARE_PREFIX) + 4 :] not in result.stdout + result.stderr
        assert "2 of 3" in cluster.unseal(good[1]).stdout
        result = _run_unseal(cluster, wrong_text)
        assert result.returncode != 0 and "do not reconstruct" in result.stdout
        assert "sealed: 0 of 3" in progress(cluster)
        assert_sealed(cluster, server)
        # reset drops progress; then a correct quorum still unseals
        cluster.unseal(good[3])
        assert "0 of 3" in cluster.deployment.cli("operator", "unseal", "--reset").stdout
        cluster.unseal(good[4], good[0], good[1])
        assert health(server)[0] == 200
    finally:
        assert server.stop() == 0
    log = server.log
    for secret in good + foreign:
        assert secret[len(SHARE_PREFIX) :] not in log


def test_init_validation(tmp_path: Path) -> None:
    deployment = Deployment(tmp_path / "data")
    for bad in ("3/5", "17/3", "1/1", "five/three"):
        result = deployment.cli("init", "--shamir", bad, check=False)
        assert result.returncode != 0 and "--shamir" in result.stderr
    assert deployment.cli("init", "--share-dir", str(tmp_path / "s"), check=False).returncode != 0
    printed = deployment.cli("init", "--shamir", "2/2").stdout
    shares = [line.split(": ", 1)[1] for line in printed.splitlines() if line.strip().startswith("share ")]
    assert len(shares) == 2 and all(s.startswith(SHARE_PREFIX) for s in shares)
    again = deployment.cli("init", "--shamir", "2/2", check=False)
    assert again.returncode != 0 and "already initialized" in again.stdout + again.stderr
    # offline commands that need the root key cannot open a shamir deployment without shares, and say why
    offline = deployment.cli("jobs", "run", check=False)
    assert offline.returncode != 0 and "shamir" in offline.stderr
    # share files that cannot be written: nothing is initialized, no share is lost
    other = Deployment(tmp_path / "other")
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "share-2.txt").symlink_to(tmp_path / "nowhere")  # O_EXCL refuses to follow it
    failed = other.cli("init", "--shamir", "3/2", "--share-dir", str(blocked), check=False)
    assert failed.returncode != 0 and "nothing was initialized" in failed.stderr
    assert "5 shares" not in failed.stdout and SHARE_PREFIX not in failed.stdout
    assert not (blocked / "share-1.txt").exists()
    retried = other.cli("init", "--shamir", "3/2", "--share-dir", str(tmp_path / "fresh"))
    assert "Initialized" in retried.stdout and len(list((tmp_path / "fresh").iterdir())) == 3
    no_server = deployment.cli("operator", "unseal", "--share-file", os.devnull, check=False)
    assert no_server.returncode != 0 and "no sealable openkms server" in no_server.stderr


def test_data_dir_and_database_without_shares_reveal_nothing(sqlite_cluster: Cluster, tmp_path: Path) -> None:
    cluster = sqlite_cluster
    server = ServerProcess(cluster.deployment)
    try:
        cluster.unseal(*cluster.shares[:3])
        kms = cluster.kms(server)
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        blob = kms.encrypt(KeyId=key_id, Plaintext=b"top secret")["CiphertextBlob"]
    finally:
        server.stop()
    # What an attacker with a copy of the data directory (the SQLite database inside it) has:
    stolen = tmp_path / "stolen"
    shutil.copytree(cluster.deployment.data_dir, stolen / "data")
    everything = b"".join(p.read_bytes() for p in (stolen / "data").rglob("*") if p.is_file())
    # The test knows the shares: reconstruct the unseal key and the root key, and look for them.
    import sqlite3

    with sqlite3.connect(stolen / "data" / "openkms.db") as db:
        (wrapped,) = db.execute("SELECT wrapped FROM root_keys WHERE version = 1").fetchone()
    params = ShamirParams.of_wrapped(wrapped)
    decoded = [Share.decode(s) for s in cluster.shares[:3]]
    unseal_key = ShamirRootOfTrust.from_shares(decoded, params)._key
    root_key = ShamirRootOfTrust.from_shares(decoded, params).unwrap_root_key(wrapped)
    for secret in [unseal_key, root_key, *(s.value for s in decoded)]:
        for form in (secret, secret.hex().encode(), base64.b64encode(secret), base64.b32encode(secret)):
            assert form not in everything
    for share in cluster.shares:
        assert share.encode() not in everything
    # No share, no service: a server on the copy is sealed, and offline commands that need the root key
    # refuse (those that read no secret, such as listing access key ids, show what the database holds in
    # clear anyway)
    thief = Deployment(stolen / "data")
    for command in (("jobs", "run"), ("audit", "public-key"), ("admin", "access-key", "create", "--root",
                    "--account", ACCOUNT)):  # fmt: skip
        assert thief.cli(*command, check=False).returncode != 0, command
    thief_server = ServerProcess(thief)
    try:
        assert_sealed(cluster, thief_server)
        with pytest.raises(botocore.exceptions.ClientError) as info:
            cluster.kms(thief_server).decrypt(CiphertextBlob=blob)
        assert "sealed" in info.value.response["Error"]["Message"]
        # shares of another cluster do not help
        other = init_shamir(tmp_path / "other", "sqlite").shares
        assert thief.cli("operator", "unseal", "--share-file", os.devnull).returncode == 0
        result = subprocess.run(
            [*OPENKMS, "operator", "unseal"], input="\n".join(other[:3]) + "\n", env=thief.env(),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode != 0 and "another openkms cluster" in result.stdout
        assert_sealed(cluster, thief_server)
    finally:
        thief_server.stop()


def test_prompt_reads_the_share_without_echo(sqlite_cluster: Cluster) -> None:
    cluster = sqlite_cluster
    server = ServerProcess(cluster.deployment)
    try:
        share = cluster.shares[4]
        pid, fd = pty.fork()  # the child gets the pty as its controlling terminal, like an operator
        if pid == 0:  # pragma: no cover - the child process
            os.execve(OPENKMS[0], [*OPENKMS, "operator", "unseal"], cluster.deployment.env())
        output = b""
        deadline = time.monotonic() + 60
        while b"input hidden" not in output and time.monotonic() < deadline:
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
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        text = output.decode(errors="replace")
        assert os.waitstatus_to_exitcode(status) == 0, text
        assert "Unseal share" in text and "1 of 3 shares accepted" in text
        assert share not in text and share[len(SHARE_PREFIX) : len(SHARE_PREFIX) + 16] not in text
    finally:
        assert server.stop() == 0


def test_shamir_provider_setting_refuses_a_key_file_deployment(tmp_path: Path) -> None:
    deployment = Deployment(tmp_path / "data", extra_env={"OPENKMS_ROOT_OF_TRUST_PROVIDER": "shamir"})
    result = deployment.cli("server", "--port", "0", check=False)
    assert result.returncode != 0 and "openkms init --shamir N/T" in result.stderr
    assert not (tmp_path / "data" / "root.key").exists()
    deployment.cli("init", "--shamir", "3/2")
    assert "root.key" not in {p.name for p in (tmp_path / "data").iterdir()}
