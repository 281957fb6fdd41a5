"""Seed files are checked whole before anything is applied: the examples and the documented format parse,
and each kind of mistake is reported with its place in the file."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from openkms.service.seed import SeedError, parse_seed, read_seed_file

ROOT = Path(__file__).resolve().parents[2]
A = "111122223333"


def test_examples_parse_to_the_same_principals() -> None:
    toml = read_seed_file(ROOT / "examples" / "identities-seed.toml")
    yaml = read_seed_file(ROOT / "examples" / "identities-seed.yaml")
    assert [a.account for a in toml] == [A, "444455556666"]
    dev = toml[0]
    assert [(p.kind, p.name, p.path) for p in dev.principals] == [
        ("user", "alice", "/engineering/"),
        ("user", "auditor", "/"),
        ("role", "app", "/"),
    ]
    app = dev.principals[2]
    assert app.keys[0].session == "build" and app.tags == {"env": "dev"}
    assert '"Action":"kms:Decrypt"' in app.policies["decrypt-only"]  # a TOML table becomes JSON
    assert dev.principals[1].policies == {}
    assert {(p.kind, p.name) for p in yaml[0].principals} <= {(p.kind, p.name) for p in dev.principals}
    assert "alice-secret" not in repr(toml)  # secrets stay out of reprs (and so out of logs)


def test_documented_format_parses() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    section = text[text.index("## Identities seed file") :]
    block = re.search(r"```toml\n(.*?)```", section, re.S)
    assert block is not None
    accounts = parse_seed(tomllib.loads(block.group(1)))
    assert accounts[0].principals[0].principal_id == "AIDAALICE000000000001"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"accounts": {}}, "accounts: expected a list, got a table"),
        ({"version": 2}, "version: only version 1 is known"),
        ({"accounts": [{"id": A, "users": [{"name": "a", "path": "x"}]}]}, "users[0].path"),
        ({"accounts": [{"id": A, "roles": [{"name": "r", "id": "AIDAXXXXXXXXXXXXXXXXX"}]}]},
         "accounts[0].roles[0].id: role id"),
        ({"accounts": [{"id": A, "users": [{"name": "a"}, {"name": "A"}]}]}, "listed twice"),
        ({"accounts": [{"id": A}, {"id": A}]}, f"account {A} is listed twice"),
        ({"accounts": [{"id": A, "users": [{"name": "a", "tags": {"aws:x": "1"}}]}]}, "reserved"),
        ({"accounts": [{"id": A, "access_keys": [{"id": "AK", "secret": "s"}]}]},
         "access_keys[0].id: the access key id must be 3 to 128"),
        ({"accounts": [{"id": A, "access_keys": [{"id": "AKIA1", "secret": "s", "session": "x"}]}]},
         "unknown entry 'session'"),
        ({"accounts": [{"id": A, "users": [{"name": "a", "policies": {"p": 5}}]}]},
         "policies.p: expected a string, got a number (a JSON string or a table)"),
    ],
)  # fmt: skip
def test_mistakes_name_their_place(raw: object, message: str) -> None:
    with pytest.raises(SeedError) as info:
        parse_seed(raw)
    assert message in str(info.value)


def test_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(SeedError, match="not UTF-8"):
        read_seed_file(tmp_path / "bin.toml")
    with pytest.raises(SeedError, match="cannot be read"):
        read_seed_file(tmp_path)
