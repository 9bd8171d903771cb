"""The sign-off records: a verdict is never PASS unless every gate passed, and a gate's reason is one line."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from eafix_capacity.signoff.records import GateResult, Signoff, evidence_anchor, overall_verdict

T = datetime(2026, 1, 14, 6, 0, tzinfo=timezone.utc)


def gate(name: str, verdict: str, *, required: bool = True) -> GateResult:
    return GateResult(name, "plan", verdict, f"{name} {verdict}", required=required)  # type: ignore[arg-type]


@pytest.mark.parametrize(("verdicts", "strict", "expected"), [
    ((), False, "FAIL"),                                  # nothing judged is not a pass
    (("PASS", "PASS"), False, "PASS"),
    (("PASS", "WARN"), False, "WARN"),
    (("PASS", "WARN"), True, "FAIL"),
    (("PASS", "FAIL"), False, "FAIL"),
])
def test_overall_verdict(verdicts, strict, expected):
    gates = [gate(f"g{i}", v) for i, v in enumerate(verdicts)]
    assert overall_verdict(gates, strict=strict) == expected


def test_a_gate_not_required_cannot_fail_the_signoff_but_is_not_a_pass():
    gates = [gate("a", "PASS"), gate("b", "FAIL", required=False)]
    assert overall_verdict(gates) == "WARN"
    assert overall_verdict(gates, strict=True) == "WARN"


@pytest.mark.parametrize(("kw", "message"), [
    ({"verdict": "OK"}, "verdict 'OK' is not one of PASS, WARN, FAIL"),
    ({"group": "misc"}, "group 'misc' is not one of"),
    ({"reason": "two\nlines"}, "one non-empty line"),
    ({"reason": ""}, "one non-empty line"),
])
def test_a_bad_gate_is_refused(kw, message):
    args = {"name": "n+1:cpu", "group": "capacity", "verdict": "PASS", "reason": "fits", **kw}
    with pytest.raises(ValueError, match=message):
        GateResult(**args)


def test_the_report_lists_failing_gates_first_and_links_each_to_its_evidence():
    s = Signoff("FAIL", (gate("a", "PASS"), gate("b", "WARN"), gate("c/d e", "FAIL")), (), T, T)
    assert [g["name"] for g in s.as_dict()["gates"]] == ["c/d e", "b", "a"]
    assert s.as_dict()["gates"][0]["evidence"] == "#evidence-c-d-e"
    assert evidence_anchor("N+1:CPU") == "evidence-n-1-cpu"
