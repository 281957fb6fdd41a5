"""Key specs that exist only in some Regions, as AWS offers them (kms-semantics.md section 0).

* ``SM2`` exists only in China (``cn-``) Regions; elsewhere it answers UnsupportedOperationException.
* ``ML_KEM_*`` is not offered in China Regions.
"""

from __future__ import annotations

from openkms import errors


def is_china(region: str) -> bool:
    return region.startswith("cn-")


def check_spec_region(spec: str, region: str) -> None:
    """Raise UnsupportedOperationException for a key spec (or key pair spec) not offered in ``region``."""
    if spec == "SM2" and not is_china(region):
        raise errors.UnsupportedOperationException(
            "KeySpec SM2 is only available in the AWS China Regions (cn-*)."
        )
    if spec.startswith("ML_KEM_") and is_china(region):
        raise errors.UnsupportedOperationException(f"KeySpec {spec} is not available in the China Regions.")
