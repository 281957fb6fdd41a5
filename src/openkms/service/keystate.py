"""The key-state matrix of kms-semantics.md section 4.2: which states each class of operation accepts.

Every operation names its ``StateRule``; ``check_state`` raises the exact AWS error for a state the rule
rejects. Keeping the matrix as data (not scattered ``if`` statements) is what lets one test walk it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from openkms import errors
from openkms.storage.base import KeyState

S = KeyState


def _disabled(arn: str) -> errors.KMSError:
    return errors.DisabledException(f"{arn} is disabled.")


def _invalid(text: str) -> Callable[[str], errors.KMSError]:
    return lambda arn: errors.KMSInvalidStateException(f"{arn} is {text}.")


def _unsupported(arn: str) -> errors.KMSError:
    return errors.UnsupportedOperationException(f"{arn} is unavailable.")


_PD = _invalid("pending deletion")
_PI = _invalid("pending import")
_UNA = _invalid("unavailable")
_CR = _invalid("creating")
_UPD = _invalid("updating")
_NPD = _invalid("not pending deletion")


class StateRule(enum.Enum):
    CRYPTO = "crypto"  # Encrypt, Decrypt, ReEncrypt, GenerateDataKey*, ...
    ANY = "any"  # DescribeKey, ListResourceTags, ...
    METADATA = "metadata"  # CreateAlias, TagResource, UntagResource, UpdateKeyDescription
    ENABLE_DISABLE = "enable_disable"
    SCHEDULE_DELETION = "schedule_deletion"
    CANCEL_DELETION = "cancel_deletion"
    ROTATION_SETTING = "rotation_setting"  # EnableKeyRotation, DisableKeyRotation
    ROTATION_STATUS = "rotation_status"
    ROTATE_ON_DEMAND = "rotate_on_demand"
    IMPORT_PARAMETERS = "import_parameters"  # GetParametersForImport (EXTERNAL keys; origin checked first)
    IMPORT_MATERIAL = "import_material"  # ImportKeyMaterial
    DELETE_IMPORTED = "delete_imported"  # DeleteImportedKeyMaterial
    CREATE_GRANT = "create_grant"


_MATRIX: dict[StateRule, dict[KeyState, Callable[[str], errors.KMSError]]] = {
    StateRule.CRYPTO: {
        S.DISABLED: _disabled,
        S.PENDING_DELETION: _PD,
        S.PENDING_REPLICA_DELETION: _PD,
        S.PENDING_IMPORT: _PI,
        S.UNAVAILABLE: _UNA,
        S.CREATING: _CR,
    },
    StateRule.ANY: {},
    StateRule.METADATA: {S.PENDING_DELETION: _PD, S.PENDING_REPLICA_DELETION: _PD},
    StateRule.ENABLE_DISABLE: {
        S.PENDING_DELETION: _PD,
        S.PENDING_REPLICA_DELETION: _PD,
        S.PENDING_IMPORT: _PI,
        S.CREATING: _CR,
        S.UPDATING: _UPD,
    },
    StateRule.SCHEDULE_DELETION: {S.PENDING_DELETION: _PD, S.PENDING_REPLICA_DELETION: _PD, S.UPDATING: _UPD},
    StateRule.CANCEL_DELETION: {
        state: _NPD for state in KeyState if state not in (S.PENDING_DELETION, S.PENDING_REPLICA_DELETION)
    },
    StateRule.ROTATION_SETTING: {
        S.DISABLED: _disabled,
        S.PENDING_DELETION: _PD,
        S.PENDING_REPLICA_DELETION: _PD,
        S.UNAVAILABLE: _unsupported,
        S.CREATING: _CR,
    },
    StateRule.ROTATION_STATUS: {S.UNAVAILABLE: _unsupported},
    StateRule.ROTATE_ON_DEMAND: {
        S.DISABLED: _disabled,
        S.PENDING_DELETION: _PD,
        S.PENDING_REPLICA_DELETION: _PD,
        S.PENDING_IMPORT: _PI,
        S.CREATING: _CR,
        S.UPDATING: _UPD,
    },
    StateRule.IMPORT_PARAMETERS: {
        S.PENDING_DELETION: _PD,
        S.PENDING_REPLICA_DELETION: _PD,
        S.UNAVAILABLE: _unsupported,
        S.CREATING: _CR,
        S.UPDATING: _UPD,
    },
    StateRule.IMPORT_MATERIAL: {
        S.PENDING_DELETION: _PD,
        S.PENDING_REPLICA_DELETION: _PD,
        S.UNAVAILABLE: _unsupported,
        S.CREATING: _CR,
    },
    StateRule.DELETE_IMPORTED: {S.CREATING: _CR, S.UPDATING: _UPD},
    StateRule.CREATE_GRANT: {
        S.DISABLED: _disabled,
        S.PENDING_DELETION: _PD,
        S.PENDING_REPLICA_DELETION: _PD,
        S.PENDING_IMPORT: _PI,
        S.CREATING: _CR,
    },
}


def check_state(rule: StateRule, state: KeyState, arn: str) -> None:
    """Raise the AWS error for ``state`` under ``rule``; return when the operation may proceed."""
    make_error = _MATRIX[rule].get(state)
    if make_error is not None:
        raise make_error(arn)
