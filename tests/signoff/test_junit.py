"""The sign-off as JUnit XML: one test case per gate, counts that match, WARN never hidden as skipped."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import timedelta

from eafix_capacity.signoff.junit import junit_xml
from eafix_capacity.signoff.records import GateResult

from .outputs_helpers import T0, gates_mixed, signoff


def _suite(text: str) -> ET.Element:
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == "testsuite"
    return root


def _cases(root: ET.Element) -> dict[str, ET.Element]:
    return {c.get("name"): c for c in root.findall("testcase")}


def test_one_testcase_per_gate_with_the_counts_and_times():
    s = signoff()
    root = _suite(junit_xml(s, hostname="ci-runner"))
    assert root.get("name") == "eafix-capacity signoff"
    cases = root.findall("testcase")
    assert [c.get("name") for c in cases] == [g.name for g in s.failing_first()]
    assert {c.get("name"): c.get("classname") for c in cases} == {
        "plan:baseline-headroom": "signoff.plan", "n+1:cpu": "signoff.capacity",
        "usage:samples:risk-manager": "signoff.usage", "rehearsal:nodepool-upgrade": "signoff.rehearsal"}
    assert root.get("tests") == str(len(cases)) == "4"
    assert root.get("failures") == str(sum(c.find("failure") is not None for c in cases)) == "1"
    assert root.get("errors") == "0" and root.get("skipped") == "0"
    assert root.get("time") == "42.500"
    assert root.get("timestamp") == "2026-12-01T06:00:00" and root.get("hostname") == "ci-runner"
    # the Ant schema's order: properties, the test cases, system-out, system-err
    assert [c.tag for c in root][0] == "properties" and [c.tag for c in root][-2:] == ["system-out", "system-err"]
    props = {p.get("name"): p.get("value") for p in root.find("properties")}
    assert props["verdict"] == "FAIL" and props["warnings"] == "1" and props["headroom.cpu_n_plus_1_pct"] == "12.5"


def test_a_fail_is_a_failure_whose_text_carries_the_reason():
    cases = _cases(_suite(junit_xml(signoff())))
    failure = cases["n+1:cpu"].find("failure")
    reason = "requests 30.1 cores > 28.0 cores left after losing node-2"
    assert failure.get("message") == reason and failure.get("type") == "FAIL"
    assert reason in failure.text          # GitLab shows the text, not the message attribute
    assert cases["plan:baseline-headroom"].find("failure") is None


def test_a_warn_is_a_pass_with_its_reason_in_system_out_never_skipped():
    case = _cases(_suite(junit_xml(signoff())))["usage:samples:risk-manager"]
    assert case.find("skipped") is None and case.find("failure") is None
    assert case.find("system-out").text.startswith("WARN: 12 samples over 2h")


def test_with_a_strict_policy_a_required_warn_is_a_failure_and_an_advisory_one_is_not():
    gates = (GateResult("usage:data", "usage", "WARN", "no usage history"),
             GateResult("live:verify", "live", "WARN", "no context given", required=False))
    s = signoff(gates, strict=True)
    root = _suite(junit_xml(s, strict=True))
    cases = _cases(root)
    assert cases["usage:data"].find("failure").get("type") == "WARN"
    assert cases["live:verify"].find("failure") is None
    assert root.get("failures") == "1"
    assert _suite(junit_xml(s, strict=False)).get("failures") == "0"


def test_an_advisory_fail_still_fails_its_test_case_and_says_so():
    gates = (GateResult("n+zone:cpu", "capacity", "FAIL", "losing zone b leaves 3 pods Pending", required=False),)
    case = _cases(_suite(junit_xml(signoff(gates))))["n+zone:cpu"]
    assert "advisory" in case.find("failure").text


def test_markup_and_control_characters_are_escaped():
    reason = 'a <b> & "c" ]]> \x07bell'
    gates = (GateResult("plan:<odd>&\"name\"", "plan", "FAIL", reason),)
    root = _suite(junit_xml(signoff(gates, context="prod & <eu>")))
    case = root.find("testcase")
    assert case.get("name") == 'plan:<odd>&"name"'
    assert case.find("failure").get("message") == 'a <b> & "c" ]]> ?bell'
    props = {p.get("name"): p.get("value") for p in root.find("properties")}
    assert props["input.context"] == "prod & <eu>"


def test_no_gates_is_an_empty_suite_of_a_failed_signoff():
    s = signoff(())
    root = _suite(junit_xml(s))
    assert root.get("tests") == "0" and root.findall("testcase") == []
    assert {p.get("name"): p.get("value") for p in root.find("properties")}["verdict"] == "FAIL"


def test_a_naive_start_time_and_a_clock_that_went_back_still_give_a_valid_suite():
    s = signoff(gates_mixed(), started=T0.replace(tzinfo=None))
    s = type(s)(s.verdict, s.gates, s.rehearsals, s.started, s.started - timedelta(seconds=5), s.inputs, s.headroom)
    root = _suite(junit_xml(s))
    assert root.get("time") == "0.000" and root.get("timestamp") == "2026-12-01T06:00:00"


# The rules of the JUnit schema CI readers validate against (jenkinsci/xunit-plugin junit-10.xsd:
# required attributes, the children each element may have, the SUREFIRE_TIME pattern) and the Ant
# schema's timestamp (ISO8601_DATETIME_PATTERN, no zone), checked by hand: no XSD validator is
# installed.
_SUREFIRE_TIME = re.compile(r"(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]*)?")
_SUITE_REQUIRED = {"name", "tests", "failures", "errors"}
_SUITE_ATTRS = _SUITE_REQUIRED | {"group", "time", "skipped", "timestamp", "hostname", "id", "package", "file", "log",
                                  "url"}
_CASE_CHILDREN = {"skipped", "error", "failure", "system-out", "system-err"}


def _check_schema(root: ET.Element) -> None:
    assert root.tag == "testsuite"
    assert _SUITE_REQUIRED <= set(root.attrib) <= _SUITE_ATTRS, root.attrib
    assert _SUREFIRE_TIME.fullmatch(root.get("time"))
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", root.get("timestamp"))
    assert {c.tag for c in root} <= {"testsuite", "properties", "testcase", "system-out", "system-err"}
    for prop in root.find("properties"):
        assert prop.tag == "property" and set(prop.attrib) == {"name", "value"}
    for case in root.findall("testcase"):
        assert "name" in case.attrib and set(case.attrib) <= {"name", "time", "classname", "group"}
        assert {c.tag for c in case} <= _CASE_CHILDREN
        for child in case:
            assert set(child.attrib) <= {"type", "message"} and len(child) == 0


def test_the_document_follows_the_junit_schema():
    gates = (*gates_mixed(), GateResult("live:verify", "live", "WARN", "not judged <x>", required=False))
    for strict in (False, True):
        _check_schema(_suite(junit_xml(signoff(gates, strict=strict), strict=strict)))
    _check_schema(_suite(junit_xml(signoff(()))))
