"""SM2 arithmetic is pure Python (milliseconds): in China Regions, where SM2 keys exist, the operations
that can touch an SM2 key leave the event loop; elsewhere they stay inline."""

from __future__ import annotations

from openkms.service import kms


def _noop(ctx: object, params: object) -> dict[str, object]:
    return {}


def test_sm2_operations_run_on_worker_threads_in_china_regions() -> None:
    for name in ("Sign", "Verify", "Encrypt", "Decrypt", "ReEncrypt", "DeriveSharedSecret"):
        inline = kms._TABLE[name][2]
        assert inline and name in kms._SM2_OPERATIONS
        operation = kms.Operation(_noop, inline, name in kms._SM2_OPERATIONS)
        assert operation.runs_inline("us-east-1") and operation.runs_inline("eu-west-1")
        assert not operation.runs_inline("cn-north-1") and not operation.runs_inline("cn-northwest-1")
    # Operations that never touch SM2 keep their placement everywhere.
    assert kms.Operation(_noop, True).runs_inline("cn-north-1")
    assert not kms.Operation(_noop, False).runs_inline("us-east-1")
    # GenerateDataKeyPair (SM2 key generation) and CreateKey already run on threads.
    assert not kms._TABLE["GenerateDataKeyPair"][2] and not kms._TABLE["CreateKey"][2]
    assert not kms._TABLE["GenerateDataKeyPairWithoutPlaintext"][2]
