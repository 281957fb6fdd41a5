"""Identities end to end: operator CLI, seed files, STS GetCallerIdentity for each principal kind (boto3 and
the aws CLI), role-session callers in KMS errors and in the audit log, and ``principal(caller)`` as the
authorization engine will see it. Real server processes on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from tests.conftest import client, make_deployment
from tests.integration.audit_support import db_events
from tests.support.awscli import aws_runner
from tests.support.servers import OPENKMS, TEST_ACCOUNT, Deployment, ServerProcess, drop_pg_schema

from openkms.app import build_service
from openkms.authz.model import PrincipalType
from openkms.config import load_settings
from openkms.service.context import Caller

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_TOML = ROOT / "examples" / "identities-seed.toml"
EXAMPLE_YAML = ROOT / "examples" / "identities-seed.yaml"
DEV = "111122223333"
PROD = "444455556666"
ALLOW_ENCRYPT = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}],
}


def cli(dep: Deployment, *args: str, check: bool = True, stdin: str | None = None) -> Any:
    env = {**dep.env(), "COLUMNS": "400"}
    result = subprocess.run(
        [*OPENKMS, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"openkms {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def fails_cleanly(result: Any, *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in result.stderr, result.stderr


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def dep(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp(f"identities-{request.param}")
    deployment = make_deployment(tmp, request.param)
    deployment.extra_env["OPENKMS_AUDIT_DIGEST_INTERVAL_SECONDS"] = "1"
    yield deployment
    if deployment.schema:
        drop_pg_schema(deployment.schema)


@pytest.fixture(scope="module")
def seeded_server(dep: Deployment) -> Iterator[ServerProcess]:
    """A server started with ``--seed`` (the example TOML file)."""
    proc = ServerProcess(dep, extra_args=("--seed", str(EXAMPLE_TOML)))
    yield proc
    proc.stop()


def sts(url: str, access_key: str, secret: str) -> Any:
    return client(url, access_key, secret, service="sts")


# ------------------------------------------------------------------------------------ STS identities


def test_server_seed_and_sts_identity_of_each_principal_kind(
    dep: Deployment, seeded_server: ServerProcess
) -> None:
    assert "13 change(s)" in seeded_server.log or "0 change(s)" in seeded_server.log
    url = seeded_server.url
    root = sts(url, "AKIADEVROOT000000001", "dev-root-secret").get_caller_identity()
    assert (root["Arn"], root["UserId"], root["Account"]) == (f"arn:aws:iam::{DEV}:root", DEV, DEV)
    alice = sts(url, "AKIAALICE00000000001", "alice-secret").get_caller_identity()
    assert alice["Arn"] == f"arn:aws:iam::{DEV}:user/engineering/alice"
    assert alice["UserId"].startswith("AIDA") and len(alice["UserId"]) == 21
    assert alice["Account"] == DEV
    session = sts(url, "AKIAAPPBUILD00000001", "app-build-secret").get_caller_identity()
    assert session["Arn"] == f"arn:aws:sts::{DEV}:assumed-role/app/build"
    role_id, _, session_name = session["UserId"].partition(":")
    assert role_id.startswith("AROA") and session_name == "build"
    assert session["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "text/xml"
    assert session["ResponseMetadata"]["RequestId"]
    other = sts(url, "AKIAPRODROOT00000001", "prod-root-secret").get_caller_identity()
    assert other["Arn"] == f"arn:aws:iam::{PROD}:root"
    # a key created with the pre-identities command (conftest's "test" root key) still works
    legacy = sts(url, "test", "test").get_caller_identity()
    assert legacy["Arn"] == f"arn:aws:iam::{TEST_ACCOUNT}:root"


def test_sts_errors_are_sts_shaped(seeded_server: ServerProcess) -> None:
    url = seeded_server.url
    cases = [
        (sts(url, "AKIAALICE00000000001", "wrong"), "SignatureDoesNotMatch", 403, "signature we calculated"),
        (sts(url, "AKIANOSUCHKEY0000001", "x"), "InvalidClientTokenId", 403, "security token included"),
    ]
    for c, code, status, text in cases:
        with pytest.raises(ClientError) as info:
            c.get_caller_identity()
        error = info.value.response["Error"]
        assert (error["Code"], error["Type"]) == (code, "Sender")
        assert text in error["Message"]
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    with pytest.raises(ClientError) as info:
        sts(url, "AKIAALICE00000000001", "alice-secret").assume_role(
            RoleArn=f"arn:aws:iam::{DEV}:role/app", RoleSessionName="xy"
        )
    assert info.value.response["Error"]["Code"] == "InvalidAction"
    assert "AssumeRole is not supported" in info.value.response["Error"]["Message"]


def test_sts_request_signed_for_kms_is_refused(seeded_server: ServerProcess) -> None:
    """A form request whose credential scope names kms: STS's SignatureDoesNotMatch, not a KMS JSON error."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = "Action=GetCallerIdentity&Version=2011-06-15"
    request = AWSRequest(
        "POST",
        seeded_server.url + "/",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    SigV4Auth(Credentials("AKIAALICE00000000001", "alice-secret"), "kms", "us-east-1").add_auth(request)
    raw = urllib.request.Request(
        request.url, data=body.encode(), headers=dict(request.headers), method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(raw, timeout=10)
    text = info.value.read().decode()
    assert info.value.code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in text
    assert "correct service: 'sts'" in text


def test_aws_cli_get_caller_identity(seeded_server: ServerProcess, tmp_path: Path) -> None:
    for key, secret, arn in (
        ("AKIADEVROOT000000001", "dev-root-secret", f"arn:aws:iam::{DEV}:root"),
        ("AKIAALICE00000000001", "alice-secret", f"arn:aws:iam::{DEV}:user/engineering/alice"),
        ("AKIAAPPBUILD00000001", "app-build-secret", f"arn:aws:sts::{DEV}:assumed-role/app/build"),
    ):
        run = aws_runner(seeded_server.url, tmp_path, key, secret)
        out = json.loads(run("sts", "get-caller-identity", "--output", "json").stdout)
        assert out["Arn"] == arn and out["Account"] == DEV
    bad = aws_runner(seeded_server.url, tmp_path, "AKIAALICE00000000001", "nope")
    result = bad("sts", "get-caller-identity", check=False)
    assert result.returncode != 0 and "SignatureDoesNotMatch" in result.stderr


def test_role_session_caller_in_kms_errors_and_audit(dep: Deployment, seeded_server: ServerProcess) -> None:
    kms = client(seeded_server.url, "AKIAAPPBUILD00000001", "app-build-secret")
    foreign = f"arn:aws:kms:us-east-1:{PROD}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    with pytest.raises(ClientError) as info:
        kms.describe_key(KeyId=foreign)
    assert info.value.response["Error"]["Code"] == "AccessDeniedException"
    assert f"User: arn:aws:sts::{DEV}:assumed-role/app/build is not authorized" in str(info.value)
    request_id = info.value.response["ResponseMetadata"]["RequestId"]
    sts(seeded_server.url, "AKIAAPPBUILD00000001", "app-build-secret").get_caller_identity()
    events = db_events(dep)
    denied = [e for e in events if e.get("requestID") == request_id]
    assert len(denied) == 1
    identity = denied[0]["userIdentity"]
    assert identity["type"] == "AssumedRole"
    assert identity["arn"] == f"arn:aws:sts::{DEV}:assumed-role/app/build"
    assert identity["accessKeyId"] == "AKIAAPPBUILD00000001"
    assert identity["sessionContext"]["sessionIssuer"]["arn"] == f"arn:aws:iam::{DEV}:role/app"
    # an authorization check ran for ListKeys (allowed or not): the record names the session's aws:userid
    try:
        listed_id = kms.list_keys()["ResponseMetadata"]["RequestId"]
    except ClientError as exc:
        listed_id = exc.response["ResponseMetadata"]["RequestId"]
    listed = [e for e in db_events(dep) if e.get("requestID") == listed_id]
    principal_id = listed[0]["userIdentity"]["principalId"]
    assert principal_id.startswith("AROA") and principal_id.endswith(":build")
    calls = [e for e in events if e["eventName"] == "GetCallerIdentity"]
    assert calls and calls[-1]["eventSource"] == "sts.amazonaws.com"
    assert calls[-1]["userIdentity"]["type"] == "AssumedRole" and calls[-1]["readOnly"] is True
    assert "app-build-secret" not in json.dumps(events)


# ---------------------------------------------------------------------------------------- seed files


def test_seed_is_idempotent_and_declarative(
    dep: Deployment, seeded_server: ServerProcess, tmp_path: Path
) -> None:
    again = cli(dep, "admin", "seed", str(EXAMPLE_TOML))
    assert "0 change(s)" in again.stdout
    # change one policy, one tag and one secret: exactly those change, and the server sees the new secret
    text = EXAMPLE_TOML.read_text()
    changed = tmp_path / "seed.toml"
    changed.write_text(
        text.replace('tags = { env = "dev" }', 'tags = { env = "test" }')
        .replace('"alice-secret"', '"alice-rotated"')
        .replace('Action = "kms:Decrypt"', 'Action = ["kms:Decrypt", "kms:Encrypt"]')
    )
    result = cli(dep, "admin", "seed", str(changed))
    assert "3 change(s)" in result.stdout, result.stdout
    assert "replaced access key AKIAALICE00000000001" in result.stdout
    assert "alice-rotated" not in result.stdout  # secrets are never printed by seed
    assert "0 change(s)" in cli(dep, "admin", "seed", str(changed)).stdout
    url = seeded_server.url
    assert sts(url, "AKIAALICE00000000001", "alice-rotated").get_caller_identity()["Account"] == DEV
    with pytest.raises(ClientError):
        sts(url, "AKIAALICE00000000001", "alice-secret").get_caller_identity()
    tags = cli(dep, "admin", "tag", "list", "--account", DEV, "--role", "app").stdout.split()
    assert tags == ["env=test"]
    # back to the example: the original state again
    result = cli(dep, "admin", "seed", str(EXAMPLE_TOML))
    assert "3 change(s)" in result.stdout
    assert sts(url, "AKIAALICE00000000001", "alice-secret").get_caller_identity()["Account"] == DEV


def test_yaml_seed(dep: Deployment) -> None:
    first = cli(dep, "admin", "seed", str(EXAMPLE_YAML))
    assert "change(s)" in first.stdout
    assert "0 change(s)" in cli(dep, "admin", "seed", str(EXAMPLE_YAML)).stdout
    cli(dep, "admin", "seed", str(EXAMPLE_TOML))  # leave the example state for the other tests


BAD_SEEDS = [
    ("seed.toml", "accounts = [", "is not valid TOML"),
    ("seed.yaml", "accounts: [", "is not valid YAML"),
    ("seed.toml", "[[accounts]]\nid = 111122223333\n", "accounts[0].id: expected a string"),
    ("seed.toml", '[[accounts]]\nid = "1234"\n', "accounts[0].id: account id '1234' is not 12 digits"),
    ("seed.toml", '[[accounts]]\nid = "111122223333"\nusers = [{ nme = "x" }]\n', "unknown entry 'nme'"),
    (
        "seed.toml",
        '[[accounts]]\nid = "111122223333"\n[[accounts.users]]\nname = "bob"\n'
        '[accounts.users.policies]\nbad = "{not json"\n',
        "accounts[0].users[0].policies.bad: policy is not a valid identity policy: "
        "The policy is not valid JSON",
    ),
    (
        "seed.toml",
        '[[accounts]]\nid = "111122223333"\n[[accounts.roles]]\nname = "r"\n'
        'access_keys = [{ id = "AKIAR", secret = "s" }]\n',
        "accounts[0].roles[0].access_keys[0].session: missing",
    ),
    (
        "seed.toml",
        '[[accounts]]\nid = "111122223333"\naccess_keys = [{ id = "AKIADUP", secret = "a" }]\n'
        '[[accounts.users]]\nname = "u"\naccess_keys = [{ id = "AKIADUP", secret = "b" }]\n',
        "access key AKIADUP is listed twice",
    ),
    ("seed.toml", '[[accounts]]\nid = "111122223333"\nusers = [{ name = "root" }]\n', "account root"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_SEEDS)
def test_bad_seed_files_fail_cleanly_and_change_nothing(
    dep: Deployment, tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    before = cli(dep, "admin", "access-key", "list").stdout
    fails_cleanly(cli(dep, "admin", "seed", str(path), check=False), message, str(path))
    assert cli(dep, "admin", "access-key", "list").stdout == before


def test_missing_seed_file_and_bad_seed_at_server_start(dep: Deployment, tmp_path: Path) -> None:
    fails_cleanly(cli(dep, "admin", "seed", str(tmp_path / "none.toml"), check=False), "cannot be read")
    bad = tmp_path / "bad.toml"
    bad.write_text('[[accounts]]\nid = "nope"\n')
    env = {**dep.env(), "OPENKMS_IAM_SEED_FILE": str(bad)}
    result = subprocess.run(
        [*OPENKMS, "server", "--port", "0"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    fails_cleanly(result, "accounts[0].id")


def test_seed_file_from_environment(dep: Deployment, tmp_path: Path) -> None:
    seed = tmp_path / "env-seed.toml"
    seed.write_text(
        '[[accounts]]\nid = "777788889999"\n[[accounts.users]]\nname = "envuser"\n'
        'access_keys = [{ id = "AKIAENVUSER", secret = "env-secret" }]\n'
    )
    dep.extra_env["OPENKMS_IAM_SEED_FILE"] = str(seed)
    try:
        proc = ServerProcess(dep)
        try:
            who = sts(proc.url, "AKIAENVUSER", "env-secret").get_caller_identity()
            assert who["Arn"] == "arn:aws:iam::777788889999:user/envuser"
        finally:
            proc.stop()
    finally:
        del dep.extra_env["OPENKMS_IAM_SEED_FILE"]


# --------------------------------------------------------------------------------------- operator CLI


def test_cli_users_roles_policies_tags_and_keys(
    dep: Deployment, tmp_path: Path, seeded_server: ServerProcess
) -> None:
    account = "222233334444"
    created = cli(
        dep, "admin", "user", "create", "carol", "--account", account, "--path", "/ops/", "--tag", "team=red"
    )
    assert f"arn:aws:iam::{account}:user/ops/carol" in created.stdout
    fails_cleanly(
        cli(dep, "admin", "user", "create", "CAROL", "--account", account, check=False), "already exists"
    )
    fails_cleanly(
        cli(dep, "admin", "user", "create", "bad name", "--account", account, check=False), "is invalid"
    )
    fails_cleanly(
        cli(dep, "admin", "user", "create", "x", "--account", account, "--path", "ops", check=False), "path"
    )
    cli(dep, "admin", "role", "create", "worker", "--account", account)
    assert "carol" in cli(dep, "admin", "user", "list", "--account", account).stdout
    assert "worker" in cli(dep, "admin", "role", "list", "--account", account).stdout

    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(ALLOW_ENCRYPT))
    cli(dep, "admin", "policy", "put", "--account", account, "--user", "carol", "--name", "enc", str(policy))
    cli(dep, "admin", "policy", "put", "--account", account, "--role", "worker", "--name", "enc", "-",
        stdin=json.dumps(ALLOW_ENCRYPT))  # fmt: skip
    listed = cli(dep, "admin", "policy", "list", "--account", account, "--user", "carol", "--show").stdout
    assert "enc" in listed and '"kms:Encrypt"' in listed
    with_principal = json.dumps(
        {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}]}
    )
    bad = cli(dep, "admin", "policy", "put", "--account", account, "--user", "carol", "--name", "p", "-",
              stdin=with_principal, check=False)  # fmt: skip
    fails_cleanly(bad, "not a valid identity policy")
    fails_cleanly(
        cli(dep, "admin", "policy", "put", "--account", account, "--user", "carol", "--name", "p", "-",
            stdin="[", check=False),
        "not a valid identity policy",
    )  # fmt: skip
    big = {"Version": "2012-10-17", "Statement": [
        {"Sid": f"s{i}", "Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"} for i in range(60)
    ]}  # fmt: skip
    fails_cleanly(
        cli(dep, "admin", "policy", "put", "--account", account, "--user", "carol", "--name", "big", "-",
            stdin=json.dumps(big), check=False),
        "Maximum policy size of 2048 bytes exceeded for user carol",
    )  # fmt: skip
    fails_cleanly(
        cli(dep, "admin", "policy", "put", "--account", account, "--user", "carol", "--role", "worker",
            "--name", "p", str(policy), check=False),
        "exactly one principal",
    )  # fmt: skip

    cli(dep, "admin", "tag", "add", "--account", account, "--user", "carol", "env=prod", "team=blue")
    cli(dep, "admin", "tag", "remove", "--account", account, "--user", "carol", "env")
    assert cli(dep, "admin", "tag", "list", "--account", account, "--user", "carol").stdout.split() == [
        "team=blue"
    ]
    fails_cleanly(
        cli(dep, "admin", "tag", "add", "--account", account, "--user", "carol", "aws:x=1", check=False),
        "reserved",
    )

    made = cli(
        dep, "admin", "access-key", "create", "--account", account, "--role", "worker", "--session", "s1"
    )
    secret = next(line.split("= ")[1] for line in made.stdout.splitlines() if "aws_secret_access_key" in line)
    key = next(line.split("= ")[1] for line in made.stdout.splitlines() if "aws_access_key_id" in line)
    assert f"arn:aws:sts::{account}:assumed-role/worker/s1" in made.stdout
    who = sts(seeded_server.url, key, secret).get_caller_identity()
    assert who["Arn"] == f"arn:aws:sts::{account}:assumed-role/worker/s1"
    for args, message in (
        (("--role", "worker"), "needs a session name"),
        (("--user", "nobody"), "user nobody does not exist"),
        (("--root", "--user", "carol"), "exactly one of"),
        (("--user", "carol", "--session", "s"), "only used with a role"),
        (("--role", "worker", "--session", "a b"), "session name"),
    ):
        fails_cleanly(
            cli(dep, "admin", "access-key", "create", "--account", account, *args, check=False), message
        )
    user_key = cli(dep, "admin", "access-key", "create", "--account", account, "--user", "carol",
                   "--access-key-id", "AKIACAROL", "--secret-access-key", "carol-secret").stdout  # fmt: skip
    assert f"arn:aws:iam::{account}:user/ops/carol" in user_key
    root_key = cli(dep, "admin", "access-key", "create", "--account", account, "--root").stdout
    assert f"arn:aws:iam::{account}:root" in root_key
    keys = cli(dep, "admin", "access-key", "list", "--account", account).stdout
    assert "AssumedRole" in keys and "AKIACAROL" in keys and "Root" in keys

    # a user with access keys is deleted only with --force, which deletes the keys too
    fails_cleanly(cli(dep, "admin", "user", "delete", "carol", "--account", account, check=False), "--force")
    deleted = cli(dep, "admin", "user", "delete", "carol", "--account", account, "--force")
    assert "AKIACAROL" in deleted.stdout
    with pytest.raises(ClientError) as info:
        sts(seeded_server.url, "AKIACAROL", "carol-secret").get_caller_identity()
    assert info.value.response["Error"]["Code"] == "InvalidClientTokenId"
    cli(dep, "admin", "role", "delete", "worker", "--account", account, "--force")
    fails_cleanly(
        cli(dep, "admin", "role", "delete", "worker", "--account", account, check=False), "does not exist"
    )
    fails_cleanly(cli(dep, "admin", "user", "list", "--account", "12", check=False), "not 12 digits")

    cli(dep, "admin", "account", "create", account, "--name", "ops")
    assert "ops" in cli(dep, "admin", "account", "list").stdout


def test_legacy_access_key_commands_still_work(dep: Deployment, seeded_server: ServerProcess) -> None:
    dep.add_access_key(DEV, "AKIALEGACYUSER", "legacy-secret", user="legacyuser")
    who = sts(seeded_server.url, "AKIALEGACYUSER", "legacy-secret").get_caller_identity()
    assert who["Arn"] == f"arn:aws:iam::{DEV}:user/legacyuser"
    assert "AKIALEGACYUSER" in cli(dep, "admin", "list-access-keys").stdout
    cli(dep, "admin", "delete-access-key", "AKIALEGACYUSER")
    # naming an existing IAM user, the old command signs as that user (its path included)
    dep.add_access_key(DEV, "AKIALEGACYALICE", "legacy-secret", user="ALICE")
    who = sts(seeded_server.url, "AKIALEGACYALICE", "legacy-secret").get_caller_identity()
    assert who["Arn"] == f"arn:aws:iam::{DEV}:user/engineering/alice"
    cli(dep, "admin", "access-key", "delete", "AKIALEGACYALICE")
    # a key made for a user that did not exist yet follows the user once it is created (with its path)
    dep.add_access_key(DEV, "AKIALEGACYZED", "zed-secret", user="zed")
    cli(dep, "admin", "user", "create", "Zed", "--account", DEV, "--path", "/later/")
    who = sts(seeded_server.url, "AKIALEGACYZED", "zed-secret").get_caller_identity()
    assert who["Arn"] == f"arn:aws:iam::{DEV}:user/later/Zed" and who["UserId"].startswith("AIDA")
    cli(dep, "admin", "user", "delete", "zed", "--account", DEV, "--force")
    fails_cleanly(cli(dep, "admin", "access-key", "delete", "AKIALEGACYALICE", check=False), "does not exist")


# -------------------------------------------------------------------------------- principal(caller)


def test_principal_of_each_caller_kind(dep: Deployment, seeded_server: ServerProcess) -> None:
    service = build_service(load_settings(environ=dep.env()))
    identities = service.identities
    try:
        root = identities.principal(Caller(DEV, f"arn:aws:iam::{DEV}:root", "AKIADEVROOT000000001"))
        assert (root.type, root.identity_policies, root.user_id) == (PrincipalType.ACCOUNT, None, DEV)

        alice = identities.principal(Caller(DEV, f"arn:aws:iam::{DEV}:user/engineering/alice", "k"))
        assert alice.type is PrincipalType.USER
        assert alice.principal_arn == alice.arn == f"arn:aws:iam::{DEV}:user/engineering/alice"
        assert alice.tags == {"team": "payments"}
        assert alice.identity_policies is not None and len(alice.identity_policies) == 1
        assert json.loads(alice.identity_policies[0])["Statement"][0]["Action"][0] == "kms:Encrypt"

        auditor = identities.principal(Caller(DEV, f"arn:aws:iam::{DEV}:user/auditor", "k"))
        assert auditor.identity_policies == ()  # modelled, nothing attached: allows nothing

        session_arn = f"arn:aws:sts::{DEV}:assumed-role/app/build"
        session = identities.principal(Caller(DEV, session_arn, "AKIAAPPBUILD00000001"))
        assert session.type is PrincipalType.ASSUMED_ROLE
        assert session.arn == session_arn and session.principal_arn == f"arn:aws:iam::{DEV}:role/app"
        assert session.user_id.startswith("AROA") and session.user_id.endswith(":build")
        assert session.tags == {"env": "dev"} and session.identity_policies is not None

        legacy = identities.principal(Caller(DEV, f"arn:aws:iam::{DEV}:user/ghost", "k"))
        assert legacy.type is PrincipalType.USER and legacy.identity_policies is None
        assert legacy.user_id.startswith("AIDA")

        # the cache follows changes made by another process (the operator CLI)
        cli(dep, "admin", "user", "create", "ghost", "--account", DEV)
        try:
            now = identities.principal(Caller(DEV, f"arn:aws:iam::{DEV}:user/ghost", "k"))
            assert now.identity_policies == ()
            cli(dep, "admin", "policy", "put", "--account", DEV, "--user", "ghost", "--name", "p", "-",
                stdin=json.dumps(ALLOW_ENCRYPT))  # fmt: skip
            now = identities.principal(Caller(DEV, f"arn:aws:iam::{DEV}:user/ghost", "k"))
            assert now.identity_policies is not None and len(now.identity_policies) == 1
        finally:
            cli(dep, "admin", "user", "delete", "ghost", "--account", DEV)
        assert (
            identities.principal(Caller(DEV, f"arn:aws:iam::{DEV}:user/ghost", "k")).identity_policies is None
        )
    finally:
        service.core.store.close()
