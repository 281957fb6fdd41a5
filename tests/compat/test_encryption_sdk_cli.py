"""``aws-encryption-cli`` (PyPI ``aws-encryption-sdk-cli``) on files, configured the documented ways
(``AWS_ENDPOINT_URL``; a profile with ``endpoint_url``), and ``openkms encrypt-file`` / ``decrypt-file``
interoperating with it both ways. Every command is a subprocess, as a user would run it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.support.awscli import AWS
from tests.support.esdk import (
    endpoint_env,
    esdk_cli,
    ok,
    openkms,
    profile_env,
    run,
    run_measured,
    sha256_file,
    write_pattern,
)
from tests.support.servers import ServerProcess

Env = dict[str, str]


@pytest.fixture(scope="module")
def work(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp(f"esdk-cli-{server.deployment.backend}")


@pytest.fixture(scope="module")
def env(server: ServerProcess, work: Path) -> Env:
    return endpoint_env(server.url, work)


@pytest.fixture(scope="module")
def keys(kms) -> list[str]:  # type: ignore[no-untyped-def]
    return [kms.create_key(Description=f"esdk cli {i}")["KeyMetadata"]["Arn"] for i in range(3)]


@pytest.fixture(scope="module")
def plain(work: Path) -> tuple[Path, str]:
    path = work / "plain.bin"
    return path, write_pattern(path, 300_001)


def cli_encrypt(env: Env, cwd: Path, src: Path, dst: Path, *wrapping: str, context: str = "purpose=compat"):  # type: ignore[no-untyped-def]
    return run(
        [
            *esdk_cli(),
            "--encrypt",
            "--input",
            str(src),
            "--output",
            str(dst),
            "--wrapping-keys",
            *wrapping,
            "--encryption-context",
            context,
            "--metadata-output",
            str(cwd / "metadata.jsonl"),
        ],
        env,
        cwd,
    )


def cli_decrypt(env: Env, cwd: Path, src: Path, dst: Path, *wrapping: str, context: str = "purpose=compat"):  # type: ignore[no-untyped-def]
    return run(
        [
            *esdk_cli(),
            "--decrypt",
            "--input",
            str(src),
            "--output",
            str(dst),
            "--wrapping-keys",
            *wrapping,
            "--encryption-context",
            context,
            "--suppress-metadata",
        ],
        env,
        cwd,
    )


def test_cli_round_trip_with_aws_endpoint_url(env: Env, work: Path, keys: list[str], plain) -> None:  # type: ignore[no-untyped-def]
    src, digest = plain
    enc, dec = work / "cli.enc", work / "cli.dec"
    ok(cli_encrypt(env, work, src, enc, f"key={keys[0]}"))
    record = json.loads((work / "metadata.jsonl").read_text().splitlines()[-1])
    header = record["header"]
    assert (
        record["mode"] == "encrypt" and header["algorithm"] == "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384"
    )
    assert header["encryption_context"]["purpose"] == "compat"
    assert [edk["key_provider"]["provider_id"] for edk in header["encrypted_data_keys"]] == ["YXdzLWttcw=="]

    ok(cli_decrypt(env, work, enc, dec, f"key={keys[0]}"))
    assert sha256_file(dec) == digest
    # the CLI enforces the encryption context it is given (it reports the failure, exit status 0)
    wrong = cli_decrypt(env, work, enc, work / "wrong.dec", f"key={keys[0]}", context="purpose=other")
    assert "Operation failed" in wrong.stderr and not (work / "wrong.dec").exists()


def test_cli_with_profile_and_bootstrap_credentials(server: ServerProcess, work: Path, plain) -> None:  # type: ignore[no-untyped-def]
    """A config profile (endpoint_url, region) + the bootstrap credentials file, named in --wrapping-keys."""
    src, digest = plain
    penv = profile_env(server.url, work, server.deployment.data_dir / "bootstrap-credentials")
    created = ok(
        run(
            [
                str(AWS),
                "kms",
                "create-key",
                "--profile",
                "openkms",
                "--query",
                "KeyMetadata.Arn",
                "--output",
                "text",
            ],
            penv,
            work,
        )
    )
    arn = created.stdout.strip()
    enc, dec = work / "profile.enc", work / "profile.dec"
    ok(cli_encrypt(penv, work, src, enc, f"key={arn}", "profile=openkms"))
    ok(cli_decrypt(penv, work, enc, dec, f"key={arn}", "profile=openkms"))
    assert sha256_file(dec) == digest
    # and openkms decrypt-file with the same profile
    again = work / "profile.again"
    ok(
        run(
            [*openkms(), "decrypt-file", str(enc), "-o", str(again), "--profile", "openkms", "-q"], penv, work
        )
    )
    assert sha256_file(again) == digest


def test_cli_multi_key_decrypts_with_either(env: Env, work: Path, keys: list[str], plain) -> None:  # type: ignore[no-untyped-def]
    src, digest = plain
    enc = work / "multi.enc"
    ok(cli_encrypt(env, work, src, enc, f"key={keys[0]}", f"key={keys[1]}"))
    for i, arn in enumerate(keys[:2]):
        out = work / f"multi.{i}.dec"
        ok(cli_decrypt(env, work, enc, out, f"key={arn}"))
        assert sha256_file(out) == digest
    assert cli_decrypt(env, work, enc, work / "multi.x.dec", f"key={keys[2]}").returncode != 0


def test_openkms_encrypt_file_decrypts_in_cli(env: Env, work: Path, keys: list[str], plain, server) -> None:  # type: ignore[no-untyped-def]
    src, digest = plain
    enc = work / "ours.enc"
    # the endpoint given as an option instead of AWS_ENDPOINT_URL
    no_endpoint = {k: v for k, v in env.items() if k != "AWS_ENDPOINT_URL"}
    result = ok(
        run(
            [
                *openkms(),
                "encrypt-file",
                str(src),
                "-o",
                str(enc),
                "--endpoint-url",
                server.url,
                "-k",
                keys[0],
                "-k",
                keys[1],
                "-c",
                "purpose=compat",
            ],
            no_endpoint,
            work,
        )
    )
    assert f"under {keys[0]}, {keys[1]}" in result.stderr
    for i, arn in enumerate(keys[:2]):
        out = work / f"ours.{i}.dec"
        ok(cli_decrypt(env, work, enc, out, f"key={arn}"))
        assert sha256_file(out) == digest


def test_cli_message_decrypts_in_openkms_decrypt_file(
    env: Env, work: Path, keys: list[str], plain, kms
) -> None:  # type: ignore[no-untyped-def]
    src, digest = plain
    enc = work / "theirs.enc"
    ok(cli_encrypt(env, work, src, enc, f"key={keys[1]}", context="purpose=compat"))
    # any KMS key in the message (discovery), with the context checked
    out = work / "theirs.dec"
    result = ok(
        run([*openkms(), "decrypt-file", str(enc), "-o", str(out), "-c", "purpose=compat"], env, work)
    )
    assert sha256_file(out) == digest and f"with {keys[1]}" in result.stderr
    # only a named key, here by alias: resolved to the ARN recorded in the message
    kms.create_alias(AliasName="alias/esdk-cli-interop", TargetKeyId=keys[1])
    named = work / "theirs.named"
    ok(
        run(
            [*openkms(), "decrypt-file", str(enc), "-o", str(named), "-k", "alias/esdk-cli-interop"],
            env,
            work,
        )
    )
    assert sha256_file(named) == digest
    # default output name: the .encrypted suffix removed, like aws-encryption-cli's own naming
    suffixed = work / "renamed.bin.encrypted"
    suffixed.write_bytes(enc.read_bytes())
    ok(run([*openkms(), "decrypt-file", str(suffixed), "-q"], env, work))
    assert sha256_file(work / "renamed.bin") == digest


def test_openkms_decrypt_file_errors_are_clean(env: Env, work: Path, keys: list[str], plain, kms) -> None:  # type: ignore[no-untyped-def]
    src, _ = plain
    enc = work / "err.enc"
    ok(
        run(
            [*openkms(), "encrypt-file", str(src), "-o", str(enc), "-k", keys[0], "-c", "a=b", "-q"],
            env,
            work,
        )
    )

    def fails(*args: str, **extra: str) -> str:
        result = run([*openkms(), *args], {**env, **extra}, work)
        assert result.returncode == 1, (result.stdout, result.stderr)
        assert "Traceback" not in result.stderr and result.stderr.startswith("Error: "), result.stderr
        return result.stderr

    assert "no such file" in fails("encrypt-file", str(work / "missing"), "-k", keys[0])
    assert "no such file" in fails("decrypt-file", str(work / "missing.enc"))
    assert "exists (use --force" in fails("encrypt-file", str(src), "-o", str(enc), "-k", keys[0])
    assert "NotFoundException" in fails("encrypt-file", str(src), "-o", str(work / "x"), "-k", "alias/nope")
    assert "not a valid AWS Encryption SDK message" in fails("decrypt-file", str(src), "-o", str(work / "x"))
    assert "encryption context does not match (a)" in fails(
        "decrypt-file", str(enc), "-o", str(work / "x"), "-c", "a=c"
    )
    # a key that is not in the message
    assert "none of the message's data keys" in fails(
        "decrypt-file", str(enc), "-o", str(work / "x"), "-k", keys[2]
    )
    # another account may not use the key: KMS's AccessDeniedException is reported, not swallowed
    denied = fails(
        "decrypt-file",
        str(enc),
        "-o",
        str(work / "x"),
        AWS_ACCESS_KEY_ID="other",
        AWS_SECRET_ACCESS_KEY="othersecret",
    )
    assert "AccessDeniedException" in denied and "kms:Decrypt" in denied
    # a disabled key: DisabledException
    kms.disable_key(KeyId=keys[0])
    try:
        assert "DisabledException" in fails("decrypt-file", str(enc), "-o", str(work / "x"))
        assert "DisabledException" in fails("encrypt-file", str(src), "-o", str(work / "x"), "-k", keys[0])
    finally:
        kms.enable_key(KeyId=keys[0])
    # a flipped bit in the body
    tampered = work / "tampered.enc"
    data = bytearray(enc.read_bytes())
    data[-2000] ^= 1
    tampered.write_bytes(bytes(data))
    assert "corrupt or was tampered with" in fails("decrypt-file", str(tampered), "-o", str(work / "x"))
    # no output file is left behind by any failure, not even a partial one
    assert not (work / "x").exists() and not list(work.glob(".x.*.partial"))
    # wrong secret: InvalidSignatureException from KMS, no region: a clear hint
    assert "InvalidSignatureException" in fails(
        "encrypt-file", str(src), "-o", str(work / "x"), "-k", keys[0], AWS_SECRET_ACCESS_KEY="wrong"
    )
    no_region = {k: v for k, v in env.items() if k != "AWS_DEFAULT_REGION"}
    result = run(
        [*openkms(), "encrypt-file", str(src), "-o", str(work / "x"), "-k", "alias/any"], no_region, work
    )
    assert result.returncode == 1 and "--region" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_100_mb_file_streams_in_bounded_memory(env: Env, work: Path, keys: list[str]) -> None:
    """openkms encrypt-file -> aws-encryption-cli -> and back through decrypt-file, 100 MiB each way, with
    each process's peak resident memory far below the file size (frames are streamed, never buffered)."""
    size = 100 * 1024 * 1024
    src, enc = work / "big.bin", work / "big.enc"
    cli_out, ours_out = work / "big.cli.dec", work / "big.openkms.dec"
    digest = write_pattern(src, size)
    try:
        result, enc_peak = run_measured(
            [*openkms(), "encrypt-file", str(src), "-o", str(enc), "-k", keys[0], "-q"], env, work
        )
        ok(result)
        assert enc.stat().st_size > size
        result, cli_peak = run_measured(
            [*esdk_cli(), "-d", "-i", str(enc), "-o", str(cli_out), "-w", f"key={keys[0]}", "-S"], env, work
        )
        ok(result)
        assert sha256_file(cli_out) == digest
        result, dec_peak = run_measured(
            [*openkms(), "decrypt-file", str(enc), "-o", str(ours_out), "-q"], env, work
        )
        ok(result)
        assert sha256_file(ours_out) == digest
        # peak RSS in KiB: the interpreter with botocore and the SDK loaded is ~65 MiB;
        # a process holding the 100 MiB file would exceed 165 MiB
        for peak in (enc_peak, cli_peak, dec_peak):
            assert peak < 120 * 1024, (enc_peak, cli_peak, dec_peak)
    finally:
        for path in (src, enc, cli_out, ours_out):
            path.unlink(missing_ok=True)


def test_progress_bar_on_a_terminal(env: Env, work: Path, keys: list[str], plain) -> None:  # type: ignore[no-untyped-def]
    """On a terminal (FORCE_COLOR makes rich treat stderr as one) the commands draw a progress bar on
    stderr; stdout stays empty either way."""
    src, digest = plain
    enc, dec = work / "bar.enc", work / "bar.dec"
    shown = ok(
        run(
            [*openkms(), "encrypt-file", str(src), "-o", str(enc), "-k", keys[0]],
            {**env, "FORCE_COLOR": "1"},
            work,
        )
    )
    assert "encrypting plain.bin" in shown.stderr and "/300.0 kB" in shown.stderr and shown.stdout == ""
    shown = ok(run([*openkms(), "decrypt-file", str(enc), "-o", str(dec)], {**env, "FORCE_COLOR": "1"}, work))
    assert "decrypting bar.enc" in shown.stderr and sha256_file(dec) == digest
    plain_run = ok(
        run([*openkms(), "encrypt-file", str(src), "-o", str(enc), "--force", "-k", keys[0]], env, work)
    )
    assert "encrypting" not in plain_run.stderr and plain_run.stderr.startswith("encrypted ")
