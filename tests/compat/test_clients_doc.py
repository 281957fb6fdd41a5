"""The recipes in docs/clients.md marked ``<!-- doc-test: NAME -->`` run verbatim against a server, in the
order of the document and in one directory, with only the documented configuration (AWS_ENDPOINT_URL and
credentials in the environment) plus the variables the recipes name (KEY_ARN, KEY_ARNS)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from tests.support.esdk import JS_DIR, endpoint_env, node_or_skip, ok, run, sha256_file, write_pattern
from tests.support.servers import ServerProcess

DOC = Path(__file__).resolve().parents[2] / "docs" / "clients.md"
BLOCK = re.compile(r"<!-- doc-test: (?P<name>[\w-]+) -->\n```(?P<lang>\w+)\n(?P<body>.*?)\n```", re.S)


def doc_blocks() -> dict[str, tuple[str, str]]:
    return {m["name"]: (m["lang"], m["body"]) for m in BLOCK.finditer(DOC.read_text())}


def test_doc_marks_the_expected_recipes() -> None:
    assert list(doc_blocks()) == ["esdk-python", "esdk-cli", "esdk-js", "openkms-files"]


@pytest.fixture(scope="module")
def setup(server: ServerProcess, kms, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp(f"clients-doc-{server.deployment.backend}")
    first = kms.create_key(Description="doc recipes")["KeyMetadata"]["Arn"]
    backup = kms.create_key(Description="doc recipes, backup")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName="alias/backup", TargetKeyId=backup)
    env = endpoint_env(server.url, work)
    bin_dir = str(Path(sys.executable).parent)  # openkms, aws-encryption-cli, aws: as after `pip install`
    env.update(KEY_ARN=first, KEY_ARNS=f"{first},{backup}", PATH=f"{bin_dir}:{env.get('PATH', '')}")
    return work, env


def test_recipes_run_in_order(setup) -> None:  # type: ignore[no-untyped-def]
    work, env = setup
    report = write_pattern(work / "report.pdf", 200_003)
    big = write_pattern(work / "big.bin", 3_000_000)
    blocks = doc_blocks()

    lang, body = blocks["esdk-python"]
    assert lang == "python"
    (work / "recipe.py").write_text(body)
    ok(run([sys.executable, "recipe.py"], env, work))
    assert (work / "big.bin.encrypted").stat().st_size > 3_000_000

    lang, body = blocks["esdk-cli"]
    assert lang == "sh"
    ok(run(["bash", "-euo", "pipefail", "-c", body], env, work))
    assert sha256_file(work / "report.decrypted.pdf") == report
    assert '"purpose": "demo"' in (work / "metadata.json").read_text()

    lang, body = blocks["esdk-js"]
    assert lang == "js"
    node = node_or_skip()
    (work / "node_modules").unlink(missing_ok=True)
    (work / "node_modules").symlink_to(JS_DIR / "node_modules")  # where the recipe's imports resolve
    (work / "recipe.mjs").write_text(body)
    ok(run([node, "recipe.mjs"], env, work))
    assert (work / "report.pdf.js.encrypted").exists()

    lang, body = blocks["openkms-files"]
    assert lang == "sh"
    ok(run(["bash", "-euo", "pipefail", "-c", body], env, work))
    for name in ("report.roundtrip.pdf", "report.cli.pdf", "report.js.pdf"):
        assert sha256_file(work / name) == report, name
    # the big file the Python recipe streamed decrypts with the command too
    ok(
        run(
            [
                sys.executable,
                "-m",
                "openkms.cli.main",
                "decrypt-file",
                "big.bin.encrypted",
                "-o",
                "big.out",
                "-q",
            ],
            env,
            work,
        )
    )
    assert sha256_file(work / "big.out") == big
