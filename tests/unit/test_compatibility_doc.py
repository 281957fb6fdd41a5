"""docs/compatibility.md must list every operation of the service model with the status the server has."""

from __future__ import annotations

import re
from pathlib import Path

from openkms.api.validation import operation_names
from openkms.service.kms import SUPPORTED_OPERATIONS

DOC = Path(__file__).resolve().parents[2] / "docs" / "compatibility.md"


def test_every_operation_listed_with_its_status() -> None:
    rows = dict(re.findall(r"^\| (\w+) \| (supported|not yet) \|", DOC.read_text(), re.MULTILINE))
    assert set(rows) == set(operation_names())
    assert len(rows) == 56
    for name, status in rows.items():
        assert (status == "supported") == (name in SUPPORTED_OPERATIONS), name
