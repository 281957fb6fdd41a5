"""Decision tables (tests/vectors/authz/*.json) against openkms.authz, kms-semantics.md section 6."""

from __future__ import annotations

from typing import Any

import pytest
from tests.support.authz_vectors import request, tables

from openkms.authz.evaluator import evaluate
from openkms.authz.lockout import locks_out
from openkms.authz.messages import access_denied_message
from openkms.authz.model import Denial

CASES = [
    pytest.param(table, case, id=f"{name}::{case['name']}")
    for name, table in tables()
    for case in table["cases"]
]


def test_tables_are_well_formed() -> None:
    seen = 0
    for name, table in tables():
        names = [case["name"] for case in table["cases"]]
        assert len(names) == len(set(names)), f"duplicate case names in {name}"
        for case in table["cases"]:
            assert set(case["expect"]) <= {"allowed", "reason", "denial", "message", "grant_id", "locks_out"}
        seen += len(names)
    assert seen >= 200


@pytest.mark.parametrize(("table", "case"), CASES)
def test_vector(table: dict[str, Any], case: dict[str, Any]) -> None:
    access = request(table, case)
    expect = case["expect"]
    if case.get("check", "evaluate") == "lockout":
        assert locks_out(access) is expect["locks_out"]
        return
    decision = evaluate(access)
    assert decision.allowed is expect["allowed"], decision.reason
    assert expect.get("reason", "") in decision.reason
    if decision.allowed:
        assert decision.denial is None
    else:
        assert decision.denial is not None
    if "denial" in expect:
        assert decision.denial == (None if expect["denial"] is None else Denial[expect["denial"]])
    if "grant_id" in expect:
        assert decision.grant_id == expect["grant_id"]
    if "message" in expect:
        assert expect["message"] in access_denied_message(access, decision)
