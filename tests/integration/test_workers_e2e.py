"""Several worker processes on one database: a change made through one worker is seen by every other
worker before the response to the change is returned (no stale caches)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError
from tests.conftest import client
from tests.support.servers import ServerProcess


@pytest.fixture(scope="module")
def multi(deployment) -> Iterator[ServerProcess]:
    proc = ServerProcess(deployment, workers=2)
    yield proc
    assert proc.stop() == 0, proc.log


def fresh_clients(url: str, n: int) -> list:
    # Each client opens its own connections, so the kernel spreads them over both workers' accept queues.
    return [client(url) for _ in range(n)]


def test_state_changes_are_visible_on_every_worker(multi: ServerProcess) -> None:
    admin = client(multi.url)
    key_id = admin.create_key()["KeyMetadata"]["KeyId"]
    clients = fresh_clients(multi.url, 12)
    for c in clients:  # warm every worker's caches with the Enabled key
        c.encrypt(KeyId=key_id, Plaintext=b"warm")
    admin.disable_key(KeyId=key_id)
    for c in clients + fresh_clients(multi.url, 12):
        with pytest.raises(ClientError) as e:
            c.encrypt(KeyId=key_id, Plaintext=b"x")
        assert e.value.response["Error"]["Code"] == "DisabledException"
    admin.enable_key(KeyId=key_id)
    for c in clients:
        assert c.encrypt(KeyId=key_id, Plaintext=b"x")["KeyId"].endswith(key_id)


def test_alias_retarget_is_visible_on_every_worker(multi: ServerProcess) -> None:
    admin = client(multi.url)
    first = admin.create_key()["KeyMetadata"]["Arn"]
    second = admin.create_key()["KeyMetadata"]["Arn"]
    admin.create_alias(AliasName="alias/workers", TargetKeyId=first)
    clients = fresh_clients(multi.url, 12)
    for c in clients:
        assert c.encrypt(KeyId="alias/workers", Plaintext=b"x")["KeyId"] == first
    admin.update_alias(AliasName="alias/workers", TargetKeyId=second)
    for c in clients:
        assert c.encrypt(KeyId="alias/workers", Plaintext=b"x")["KeyId"] == second


def test_deleted_access_key_is_rejected_by_every_worker(multi: ServerProcess, deployment) -> None:
    deployment.add_access_key("123456789012", "AKIATEMPORARY0000001", "tempsecret")
    clients = [client(multi.url, "AKIATEMPORARY0000001", "tempsecret") for _ in range(12)]
    for c in clients:
        c.list_keys(Limit=1)
    deployment.cli("admin", "delete-access-key", "AKIATEMPORARY0000001")
    for c in clients:
        with pytest.raises(ClientError) as e:
            c.list_keys(Limit=1)
        assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_concurrent_creates_from_many_clients(multi: ServerProcess) -> None:
    from concurrent.futures import ThreadPoolExecutor

    clients = fresh_clients(multi.url, 8)
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda c: [c.create_key()["KeyMetadata"]["KeyId"] for _ in range(10)], clients))
    flat = [k for batch in ids for k in batch]
    assert len(set(flat)) == 80
    admin = client(multi.url)
    for key_id in flat[::7]:
        blob = admin.encrypt(KeyId=key_id, Plaintext=b"v")["CiphertextBlob"]
        assert admin.decrypt(CiphertextBlob=blob)["Plaintext"] == b"v"


def test_connections_are_spread_over_the_workers(multi: ServerProcess) -> None:
    # Each worker listens on its own SO_REUSEPORT socket: a burst of new connections must not all land
    # on the worker that happened to wake first (it did with one shared accept queue).
    import http.client
    import json
    from urllib.parse import urlsplit

    address = urlsplit(multi.url)
    connections = [http.client.HTTPConnection(address.hostname, address.port, timeout=10) for _ in range(32)]
    workers = set()
    try:
        for conn in connections:
            conn.request("GET", "/health")
            workers.add(json.loads(conn.getresponse().read())["worker"])
    finally:
        for conn in connections:
            conn.close()
    assert len(workers) == 2


def test_grant_changes_are_visible_on_every_worker(multi: ServerProcess) -> None:
    admin = client(multi.url)
    key_id = admin.create_key()["KeyMetadata"]["KeyId"]
    alice = "arn:aws:iam::123456789012:user/alice"
    first = admin.create_grant(KeyId=key_id, GranteePrincipal=alice, Operations=["DescribeKey"])
    clients = fresh_clients(multi.url, 12)
    for c in clients:  # every worker caches the key's grant list, with the first grant only
        c.describe_key(KeyId=key_id, GrantTokens=[first["GrantToken"]])
    grant = admin.create_grant(KeyId=key_id, GranteePrincipal=alice, Operations=["Encrypt"])
    for c in clients:  # the new grant's token is usable at once on every worker
        c.encrypt(KeyId=key_id, Plaintext=b"x", GrantTokens=[grant["GrantToken"]])
    admin.revoke_grant(KeyId=key_id, GrantId=grant["GrantId"])
    for c in clients:
        with pytest.raises(ClientError) as e:
            c.encrypt(KeyId=key_id, Plaintext=b"x", GrantTokens=[grant["GrantToken"]])
        assert e.value.response["Error"]["Code"] == "InvalidGrantTokenException"


def test_concurrent_changes_to_one_key_take_turns(multi: ServerProcess) -> None:
    # Writers of one key on both workers read, check and compare-and-set its record; on PostgreSQL the
    # loser of the race answered KMSInternalException before get_key locked the row in write transactions.
    from concurrent.futures import ThreadPoolExecutor

    admin = client(multi.url)
    key_id = admin.create_key()["KeyMetadata"]["KeyId"]
    policy = admin.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]

    def work(c) -> list[str]:  # type: ignore[no-untyped-def]
        calls = [
            lambda: c.update_key_description(KeyId=key_id, Description="d"),
            lambda: c.disable_key(KeyId=key_id),
            lambda: c.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy),
            lambda: c.enable_key(KeyId=key_id),
        ]
        codes = []
        for i in range(16):
            try:
                calls[i % 4]()
            except ClientError as e:
                codes.append(e.response["Error"]["Code"])
        return codes

    with ThreadPoolExecutor(8) as pool:
        failures = [code for codes in pool.map(work, fresh_clients(multi.url, 8)) for code in codes]
    assert failures == []
    assert admin.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "d"


def test_condition_inputs_changed_elsewhere_are_seen_by_every_worker(
    multi: ServerProcess, deployment, tmp_path
) -> None:
    # What authorization caches besides the key: its tags (aws:ResourceTag), its aliases
    # (kms:ResourceAliases) and the caller's identity policies, changed through the API or the CLI.
    import json

    deployment.cli("admin", "user", "create", "--account", "123456789012", "carl")
    deployment.cli(
        "admin", "access-key", "create", "--account", "123456789012", "--user", "carl",
        "--access-key-id", "carl", "--secret-access-key", "carlsecret",
    )  # fmt: skip
    admin = client(multi.url)
    key_id = admin.create_key(Tags=[{"TagKey": "env", "TagValue": "prod"}])["KeyMetadata"]["KeyId"]
    statements = [
        {"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*",
         "Condition": {"StringEquals": {"aws:ResourceTag/env": "prod"}}},
        {"Effect": "Allow", "Action": "kms:DescribeKey", "Resource": "*",
         "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/carl"}}},
    ]  # fmt: skip
    document = tmp_path / "carl.json"
    document.write_text(json.dumps({"Version": "2012-10-17", "Statement": statements}))
    carl = [client(multi.url, "carl", "carlsecret") for _ in range(12)]

    def codes(call: str) -> set[str]:
        found = set()
        for c in carl:
            try:
                getattr(c, call)(KeyId=key_id, **({"Plaintext": b"x"} if call == "encrypt" else {}))
                found.add("OK")
            except ClientError as e:
                found.add(e.response["Error"]["Code"])
        return found

    assert codes("encrypt") == {"AccessDeniedException"}  # every worker caches carl without policies
    deployment.cli(
        "admin", "policy", "put", "--account", "123456789012", "--user", "carl", "--name", "p", str(document)
    )
    assert codes("encrypt") == {"OK"}
    admin.untag_resource(KeyId=key_id, TagKeys=["env"])
    assert codes("encrypt") == {"AccessDeniedException"}
    assert codes("describe_key") == {"AccessDeniedException"}
    admin.create_alias(AliasName="alias/carl", TargetKeyId=key_id)
    assert codes("describe_key") == {"OK"}
    admin.delete_alias(AliasName="alias/carl")
    assert codes("describe_key") == {"AccessDeniedException"}
    admin.tag_resource(KeyId=key_id, Tags=[{"TagKey": "env", "TagValue": "prod"}])
    assert codes("encrypt") == {"OK"}
    deployment.cli("admin", "policy", "delete", "--account", "123456789012", "--user", "carl", "--name", "p")
    assert codes("encrypt") == {"AccessDeniedException"}


def test_port_in_use_fails_cleanly(multi: ServerProcess) -> None:
    from urllib.parse import urlsplit

    port = urlsplit(multi.url).port
    assert port is not None
    for workers in ("1", "2"):  # with 2, SO_REUSEPORT must not let a second server join the port
        result = multi.deployment.cli("server", "--port", str(port), "--workers", workers, check=False)
        assert result.returncode != 0
        assert f"cannot listen on 127.0.0.1:{port}" in result.stdout + result.stderr
        assert "Traceback" not in result.stdout + result.stderr
