#!/usr/bin/env python3
"""Envelope encryption of a large file with ``openkms encrypt-file``, next to raw AES-256-GCM.

    .venv/bin/python benchmarks/envelope.py [--size-mib 1024] [--rounds 3] [--json OUT] [--breakdown]

Starts ``openkms server`` on a temporary data directory (SQLite), creates one symmetric key, writes a
file of random bytes, then alternates in each round:

* raw: pyca/cryptography AES-256-GCM over the same file, read in 1 MiB chunks from the page cache, each
  chunk sealed under a fresh nonce (the library primitive with no format, no KMS, no output);
* a plain copy of the file (read + write, no crypto): the I/O floor any file encryption pays;
* ``openkms encrypt-file`` with the default suite (AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384: the
  body is also hashed with SHA-384 for the ECDSA signature) and with the unsigned committing suite;
* ``openkms decrypt-file`` of the signed message;
* encrypt-file's code path called in this process (no interpreter start or imports), both suites.

The commands are timed end to end as a user runs them (process start, one KMS call over HTTP, reading,
writing the output) and always write a new file: the previous round's output is deleted first, untimed,
as the copy and in-process rows do (replacing an existing 1 GiB file with ``--force`` would add the
freeing of the old file's pages and blocks to the command's system time). Each round also times
``encrypt-file`` of a 1-byte file: the fixed cost every command pays once per file (interpreter start,
imports, botocore client, one GenerateDataKey call), printed in seconds. Two clocks: wall time, and CPU
time (user + system of the command's process; of this process for raw). On a shared machine CPU time is
the figure to compare: wall time there mostly measures the neighbours. MB/s = 10^6 bytes of plaintext
per second; medians over the rounds. Target (informational, never the exit status): encrypt-file >= 25 %
of raw.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import boto3
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
OPENKMS = [sys.executable, "-m", "openkms.cli.main"]
ACCOUNT = "123456789012"
CHUNK = 1024 * 1024
TARGET = 0.25
SIGNED = "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384"
UNSIGNED = "AES_256_GCM_HKDF_SHA512_COMMIT_KEY"


ROWS = (
    ("raw AES-256-GCM (pyca/cryptography)", "raw"),
    ("plain file copy, no crypto (read + write, 1 MiB pieces)", "copy"),
    ("encrypt-file, default suite (..._COMMIT_KEY_ECDSA_P384)", "signed"),
    ("encrypt-file --algorithm AES_256_GCM_HKDF_SHA512_COMMIT_KEY", "unsigned"),
    ("decrypt-file (signed message)", "decrypt"),
    ("encrypt-file's code path in-process, default suite", "inproc-signed"),
    ("encrypt-file's code path in-process, unsigned suite", "inproc-unsigned"),
)


def server_env(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENKMS_", "AWS_"))}
    env.update(OPENKMS_DATA_DIR=str(data), OPENKMS_JOBS_ENABLED="false", OPENKMS_LOGGING_LEVEL="WARNING")
    return env


def start_server(data: Path) -> tuple[subprocess.Popen[str], str]:
    env = server_env(data)
    subprocess.run([*OPENKMS, "init", "--account", ACCOUNT], env=env, check=True, capture_output=True)
    subprocess.run(
        [
            *OPENKMS,
            "admin",
            "create-access-key",
            "--account",
            ACCOUNT,
            "--access-key-id",
            "test",
            "--secret-access-key",
            "test",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    proc = subprocess.Popen(
        [*OPENKMS, "server", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = re.search(r"listening on (https?://\S+)", line)
        if match:
            return proc, match.group(1)
        if not line and proc.poll() is not None:
            break
    stop(proc)
    raise SystemExit("openkms server did not start")


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as out:
        left = size
        while left:
            piece = os.urandom(min(16 * CHUNK, left))
            out.write(piece)
            left -= len(piece)


def raw_aes_gcm(path: Path) -> tuple[float, float]:
    """(wall, CPU) seconds to seal the file's bytes with AES-256-GCM, 1 MiB per nonce."""
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    counter = 0
    wall, cpu = time.perf_counter(), time.process_time()
    with path.open("rb") as src:
        while chunk := src.read(CHUNK):
            counter += 1
            aead.encrypt(counter.to_bytes(12, "big"), chunk, None)
    return time.perf_counter() - wall, time.process_time() - cpu


def plain_copy(src: Path, dst: Path) -> tuple[float, float]:
    """(wall, CPU) seconds to copy the file in 1 MiB pieces: the I/O floor of any file encryption."""
    wall, cpu = time.perf_counter(), time.process_time()
    with src.open("rb") as inp, dst.open("wb") as out:
        while chunk := inp.read(CHUNK):
            out.write(chunk)
    elapsed = time.perf_counter() - wall, time.process_time() - cpu
    dst.unlink()
    return elapsed


def in_process(src: Path, dst: Path, key: str, url: str, suite: str) -> tuple[float, float]:
    """(wall, CPU) seconds of encrypt-file's own code path (``run_encrypt``: DescribeKey-free key ARN,
    GenerateDataKey over HTTP, the SDK stream, reading and writing the files), without the interpreter
    start and imports that a command pays once per file (~0.3-0.5 s of CPU)."""
    from openkms.cli.files import DEFAULT_FRAME_LENGTH
    from openkms.cli.files_run import run_encrypt

    wall, cpu = time.perf_counter(), time.process_time()
    run_encrypt(
        src,
        lambda: dst.open("wb"),
        key_ids=(key,),
        context={},
        algorithm=suite,
        frame_length=DEFAULT_FRAME_LENGTH,
        advance=lambda _n: None,
        endpoint_url=url,
        profile=None,
        region="us-east-1",
    )
    elapsed = time.perf_counter() - wall, time.process_time() - cpu
    dst.unlink()
    return elapsed


def breakdown(src: Path, key: str, url: str, rounds: int) -> dict[str, float]:
    """Median CPU seconds of the pieces of encrypt-file's work on this file, in this process, 256 KiB (one
    frame) at a time: what each costs on its own, to see what limits the command (``--breakdown``)."""
    from cryptography.hazmat.primitives import hashes

    from openkms.cli.files import DEFAULT_FRAME_LENGTH as FRAME
    from openkms.cli.files_run import run_encrypt

    def read() -> None:
        with src.open("rb") as inp:
            while inp.read(FRAME):
                pass

    def read_seal() -> None:
        aead, counter = AESGCM(AESGCM.generate_key(bit_length=256)), 0
        with src.open("rb") as inp:
            while chunk := inp.read(FRAME):
                counter += 1
                aead.encrypt(counter.to_bytes(12, "big"), chunk, None)

    def read_hash() -> None:
        digest = hashes.Hash(hashes.SHA384())
        with src.open("rb") as inp:
            while chunk := inp.read(FRAME):
                digest.update(chunk)
        digest.finalize()

    def copy() -> None:
        out = src.with_name("breakdown.copy")
        with src.open("rb") as inp, out.open("wb") as dst:
            while chunk := inp.read(FRAME):
                dst.write(chunk)
        out.unlink()

    def sdk(suite: str) -> Callable[[], None]:
        def run() -> None:  # output discarded: the SDK's work without the page-cache write
            run_encrypt(
                src,
                lambda: open(os.devnull, "wb"),  # noqa: SIM115 (run_encrypt closes it)
                key_ids=(key,),
                context={},
                algorithm=suite,
                frame_length=FRAME,
                advance=lambda _n: None,
                endpoint_url=url,
                profile=None,
                region="us-east-1",
            )

        return run

    parts: dict[str, Callable[[], None]] = {
        "read the file": read,
        "read + AES-256-GCM seal": read_seal,
        "read + SHA-384 (the signed suite's hash)": read_hash,
        "read + write a copy": copy,
        "encrypt-file code path, unsigned, output discarded": sdk(UNSIGNED),
        "encrypt-file code path, signed, output discarded": sdk(SIGNED),
    }
    cpu: dict[str, list[float]] = {name: [] for name in parts}
    for _ in range(rounds):
        for name, work in parts.items():
            start = time.process_time()
            work()
            cpu[name].append(time.process_time() - start)
    return {name: statistics.median(values) for name, values in cpu.items()}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def encrypt_cmd(src: Path, out: Path, key: str, suite: str) -> list[str]:
    return [*OPENKMS, "encrypt-file", str(src), "-o", str(out), "-q", "-k", key, "--algorithm", suite]


def timed(cmd: list[str], env: dict[str, str], remove: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of a command; CPU is user + system time of the process. ``remove`` (the
    command's output, left by the previous round) is deleted first, untimed."""
    remove.unlink(missing_ok=True)
    wall, cpu = time.perf_counter(), children_cpu()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - wall, children_cpu() - cpu
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stderr}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=1024, help="file size in MiB (default 1024)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where to put the files (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--breakdown", action="store_true", help="also time the pieces of the work in this process (CPU s)"
    )
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024

    with tempfile.TemporaryDirectory(prefix="envelope-", dir=args.dir) as tmp:
        work = Path(tmp)
        proc, url = start_server(work / "data")
        try:
            kms = boto3.client(
                "kms",
                endpoint_url=url,
                region_name="us-east-1",
                aws_access_key_id="test",
                aws_secret_access_key="test",
            )
            key = kms.create_key(Description="envelope benchmark")["KeyMetadata"]["Arn"]
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update(
                AWS_ENDPOINT_URL=url,
                AWS_ACCESS_KEY_ID="test",
                AWS_SECRET_ACCESS_KEY="test",
                AWS_DEFAULT_REGION="us-east-1",
                AWS_CONFIG_FILE="/dev/null",
                AWS_SHARED_CREDENTIALS_FILE="/dev/null",
            )
            # the in-process runs build their botocore session from this process's environment
            os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
            src = work / "plain.bin"
            write_random(src, size)
            raw_aes_gcm(src)  # warm the page cache
            times: dict[str, list[tuple[float, float]]] = {
                "raw": [],
                "copy": [],
                "inproc-signed": [],
                "inproc-unsigned": [],
                "signed": [],
                "unsigned": [],
                "decrypt": [],
                "fixed": [],
            }
            tiny = work / "tiny.bin"
            tiny.write_bytes(b"x")
            for _ in range(args.rounds):
                times["raw"].append(raw_aes_gcm(src))
                times["copy"].append(plain_copy(src, work / "copy.bin"))
                times["inproc-signed"].append(in_process(src, work / "inproc.enc", key, url, SIGNED))
                times["inproc-unsigned"].append(in_process(src, work / "inproc.enc", key, url, UNSIGNED))
                times["fixed"].append(
                    timed(encrypt_cmd(tiny, work / "tiny.enc", key, SIGNED), env, remove=work / "tiny.enc")
                )
                for name, suite in (("signed", SIGNED), ("unsigned", UNSIGNED)):
                    out = work / f"{name}.enc"
                    times[name].append(timed(encrypt_cmd(src, out, key, suite), env, remove=out))
                times["decrypt"].append(
                    timed(
                        [
                            *OPENKMS,
                            "decrypt-file",
                            str(work / "signed.enc"),
                            "-o",
                            str(work / "dec.bin"),
                            "-q",
                        ],
                        env,
                        remove=work / "dec.bin",
                    )
                )
            parts = breakdown(src, key, url, args.rounds) if args.breakdown else {}
        finally:
            stop(proc)

    report: dict[str, dict[str, object]] = {}
    for axis, index in (("wall", 0), ("cpu", 1)):
        fixed = statistics.median(t[index] for t in times["fixed"])
        rates = {
            name: [size / t[index] / 1e6 for t in values] for name, values in times.items() if name != "fixed"
        }
        med = {name: statistics.median(values) for name, values in rates.items()}
        report[axis] = {"mb_per_s": rates, "median": med, "fixed_cost_s": fixed}
        heading = f"{args.size_mib} MiB file, {args.rounds} rounds, {axis} time"
        print(f"\n{heading}: MB/s median [min-max], share of raw")
        for label, name in ROWS:
            share = med[name] / med["raw"]
            spread = f"[{min(rates[name]):.0f}-{max(rates[name]):.0f}]"
            print(f"  {label:<64} {med[name]:7.0f} {spread:>13}  {share:6.1%}")
        print(f"  {'fixed cost of one encrypt-file (1-byte file), seconds':<64} {fixed:7.3f}")
        for name in ("signed", "unsigned", "inproc-signed", "inproc-unsigned"):
            verdict = "met" if med[name] >= TARGET * med["raw"] else "NOT met"
            print(f"  target: encrypt-file ({name}) >= {TARGET:.0%} of raw: {verdict}")
    if parts:
        print(f"\nbreakdown, {args.size_mib} MiB in 256 KiB pieces, in this process: CPU s median, MB/s")
        for name, seconds in parts.items():
            print(f"  {name:<64} {seconds:7.3f} {size / seconds / 1e6:7.0f}")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.json:
        args.json.write_text(
            json.dumps({"size_mib": args.size_mib, **report, "breakdown_cpu_s": parts}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
