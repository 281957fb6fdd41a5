"""Two openkms nodes (own data directories, same PostgreSQL schema and root key): both serve every key,
and a change made through one node reaches the other's caches within a few seconds."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError
from tests.conftest import client, make_deployment
from tests.support.servers import TEST_ACCOUNT, Deployment, ServerProcess, drop_pg_schema


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


def test_grant_token_works_on_the_other_node_at_once(nodes: tuple[ServerProcess, ServerProcess]) -> None:
    # A grant token exists so that a new grant can be used before it is consistent everywhere: node b
    # has the key's (empty) grant list cached and learns of the grant only at its next poll, but a
    # request carrying the token must be allowed at once (it was denied for up to a second).
    nodes[0].deployment.add_access_key(TEST_ACCOUNT, "granted", "grantedsecret", user="granted")
    grantee = f"arn:aws:iam::{TEST_ACCOUNT}:user/granted"
    owner = client(nodes[0].url)
    user_on_b = client(nodes[1].url, "granted", "grantedsecret")
    admin_only = {  # the key policy gives the user nothing: only the grant can allow Encrypt
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{TEST_ACCOUNT}:root"},
                "Action": ["kms:CreateGrant", "kms:RevokeGrant", "kms:GetKeyPolicy", "kms:PutKeyPolicy"],
                "Resource": "*",
            }
        ],
    }
    for _ in range(3):
        key_id = owner.create_key(Policy=json.dumps(admin_only))["KeyMetadata"]["KeyId"]
        with pytest.raises(ClientError) as denied:  # node b caches the key and its empty grant list
            user_on_b.encrypt(KeyId=key_id, Plaintext=b"x")
        assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
        grant = owner.create_grant(KeyId=key_id, GranteePrincipal=grantee, Operations=["Encrypt"])
        token = grant["GrantToken"]
        blob = user_on_b.encrypt(KeyId=key_id, Plaintext=b"x", GrantTokens=[token])["CiphertextBlob"]
        with pytest.raises(ClientError) as denied:  # node b caches the grant list [Encrypt grant]
            user_on_b.decrypt(CiphertextBlob=blob)
        assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
        decrypt = owner.create_grant(KeyId=key_id, GranteePrincipal=grantee, Operations=["Decrypt"])
        # Decrypt without KeyId: the key comes from the ciphertext, not from a KeyId lookup
        opened = user_on_b.decrypt(CiphertextBlob=blob, GrantTokens=[decrypt["GrantToken"]])
        assert opened["Plaintext"] == b"x"
        owner.revoke_grant(KeyId=key_id, GrantId=grant["GrantId"])
        deadline = time.monotonic() + 10  # a revoked grant's token is refused once node b knows
        while True:
            try:
                user_on_b.encrypt(KeyId=key_id, Plaintext=b"x", GrantTokens=[token])
            except ClientError as exc:
                # refused by the authorization check (the grant is gone) before the token is checked
                assert exc.response["Error"]["Code"] == "AccessDeniedException"
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
