"""Two openkms nodes (own data directories, same PostgreSQL schema and root key): both serve every key,
and a change made through one node reaches the other's caches within a few seconds."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError
from tests.conftest import client, make_deployment
from tests.support.servers import Deployment, ServerProcess, drop_pg_schema


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    first = make_deployment(tmp_path_factory.mktemp("node-a"), "postgres")
    second_dir = tmp_path_factory.mktemp("node-b") / "data"
    second_dir.mkdir(mode=0o700)
    shutil.copy2(first.data_dir / "root.key", second_dir / "root.key")
    second = Deployment(second_dir, backend="postgres", schema=first.schema)
    a, b = ServerProcess(first), ServerProcess(second)
    yield a, b
    a.stop()
    b.stop()
    assert first.schema is not None
    drop_pg_schema(first.schema)


def test_nodes_share_keys_and_converge(nodes: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = client(nodes[0].url), client(nodes[1].url)
    key_id = a.create_key()["KeyMetadata"]["KeyId"]
    blob = a.encrypt(KeyId=key_id, Plaintext=b"shared")["CiphertextBlob"]
    assert b.decrypt(CiphertextBlob=blob)["Plaintext"] == b"shared"  # node b caches the Enabled key
    a.disable_key(KeyId=key_id)
    deadline = time.monotonic() + 10
    while True:
        try:
            b.encrypt(KeyId=key_id, Plaintext=b"x")
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "DisabledException"
            break
        assert time.monotonic() < deadline, "node b never saw the key disabled on node a\n" + nodes[1].log
        time.sleep(0.2)


def test_second_node_without_root_key_fails_clearly(nodes, tmp_path) -> None:  # type: ignore[no-untyped-def]
    schema = nodes[0].deployment.schema
    lonely = Deployment(tmp_path / "data", backend="postgres", schema=schema)
    result = lonely.cli("server", "--port", "0", check=False)
    assert result.returncode != 0
    assert "root.key" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
