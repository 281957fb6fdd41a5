"""Checks through the ``openssl`` command-line tool: an implementation independent of the server's."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

OPENSSL = "openssl"

_DIGESTS = {"256": "-sha256", "384": "-sha384", "512": "-sha512"}


def _run(args: list[str], cwd: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [OPENSSL, *args], cwd=cwd, capture_output=True, timeout=60, input=stdin, check=False
    )


def verify_signature(public_der: bytes, algorithm: str, message: bytes, signature: bytes) -> bool:
    """Verify a KMS RSA, ECDSA or Ed25519 (pure) signature over a RAW message with ``openssl``."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "pub.der").write_bytes(public_der)
        (d / "msg").write_bytes(message)
        (d / "sig").write_bytes(signature)
        if algorithm == "ED25519_SHA_512":
            args = [
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                "pub.der",
                "-keyform",
                "DER",
                "-rawin",
                "-in",
                "msg",
                "-sigfile",
                "sig",
            ]
        else:
            args = [
                "dgst",
                _DIGESTS[algorithm[-3:]],
                "-verify",
                "pub.der",
                "-keyform",
                "DER",
                "-signature",
                "sig",
            ]
            if algorithm.startswith("RSASSA_PSS"):
                args += [
                    "-sigopt",
                    "rsa_padding_mode:pss",
                    "-sigopt",
                    "rsa_pss_saltlen:digest",
                    "-sigopt",
                    f"rsa_mgf1_md:sha{algorithm[-3:]}",
                ]
            args.append("msg")
        result = _run(args, d)
        return result.returncode == 0 and b"Verif" in result.stdout + result.stderr


def oaep_encrypt(public_der: bytes, algorithm: str, plaintext: bytes) -> bytes:
    """RSAES-OAEP encryption with ``openssl pkeyutl`` (same hash for OAEP and MGF1, empty label)."""
    md = "sha1" if algorithm == "RSAES_OAEP_SHA_1" else "sha256"
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "pub.der").write_bytes(public_der)
        result = _run(
            [
                "pkeyutl",
                "-encrypt",
                "-pubin",
                "-inkey",
                "pub.der",
                "-keyform",
                "DER",
                "-pkeyopt",
                "rsa_padding_mode:oaep",
                "-pkeyopt",
                f"rsa_oaep_md:{md}",
                "-pkeyopt",
                f"rsa_mgf1_md:{md}",
            ],
            d,
            stdin=plaintext,
        )
        if result.returncode != 0:
            raise AssertionError(result.stderr.decode())
        return result.stdout


def parse_private_key(pkcs8_der: bytes) -> str:
    """``openssl pkey -text`` of a PKCS#8 DER private key (raises if openssl cannot parse it)."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "key.der").write_bytes(pkcs8_der)
        result = _run(["pkey", "-inform", "DER", "-in", "key.der", "-noout", "-text_pub"], d)
        if result.returncode != 0:
            raise AssertionError(result.stderr.decode())
        return result.stdout.decode()
