"""A sign-off as a JUnit XML file: one test case per gate, so CI and change tools show it natively.

Jenkins (the JUnit plugin), GitLab (``artifacts:reports:junit``) and the GitHub actions that
read JUnit (``mikepenz/action-junit-report``, ``dorny/test-reporter``; GitHub itself has no
reader) all show a ``<testcase>`` with its ``classname`` and ``name``, a ``<failure>`` as a
failed test, and a ``<skipped>`` as a skipped one. The document is one
``<testsuite name="eafix-capacity signoff">`` whose test cases are ``classname="signoff.<group>"``
and ``name="<gate>"``, in the report's order (failing first).

How each verdict is written, and why:

- **FAIL** is a ``<failure type="FAIL" message="<reason>">`` whose text is the reason too:
  GitLab ignores the ``message`` attribute and shows only the element's text
  (gitlab-org/gitlab-foss#53668), Jenkins shows the message. A gate the policy does not
  require still fails its test case (the gate did fail), with the text saying it is advisory;
  the overall verdict and the exit code follow the policy (``records.overall_verdict``).
- **WARN** is *not* ``<skipped>``: every reader counts a skipped test as "not run" and GitLab
  and many dashboards show it as neutral or even green (gitlab-org/gitlab#29032 is the request
  to make skipped tests visible at all), which would hide a gate the data could not judge. A
  WARN is a passing test case whose ``<system-out>`` says ``WARN: <reason>`` (Jenkins and
  GitLab show a test case's system-out in its details), and the suite's properties count the
  warnings. With a strict policy a required WARN fails the sign-off, so it is then a
  ``<failure type="WARN">``: CI shows what made the run fail.
- **PASS** is an empty test case with the reason in its ``<system-out>``.

Counts (``tests``, ``failures``, ``errors``, ``skipped``) are those of the test cases written;
``errors`` and ``skipped`` are always 0: a gate always has a verdict, and a run that crashed
writes no JUnit file (it exits 2). ``time`` is the run's wall time, ``timestamp`` its start in
UTC without a zone designator, as the Ant JUnit schema's ``ISO8601_DATETIME_PATTERN`` wants.
Elements are in the schema's order (properties, test cases, system-out, system-err); the XML
is built with ElementTree, so every value is escaped; characters XML 1.0 cannot carry (control
characters) are replaced by ``?``.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import timezone

from .records import GateResult, Signoff

SUITE_NAME = "eafix-capacity signoff"
CLASS_PREFIX = "signoff."
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: object) -> str:
    return _NOT_XML.sub("?", str(value))


def _is_failure(gate: GateResult, *, strict: bool) -> bool:
    return gate.verdict == "FAIL" or (strict and gate.required and gate.verdict == "WARN")


def _testcase(suite: ET.Element, gate: GateResult, *, strict: bool) -> None:
    case = ET.SubElement(suite, "testcase", classname=CLASS_PREFIX + gate.group, name=_text(gate.name), time="0")
    reason = _text(gate.reason)
    if _is_failure(gate, strict=strict):
        failure = ET.SubElement(case, "failure", type=gate.verdict, message=reason)
        advisory = "" if gate.required else " (advisory: the policy does not require this gate)"
        failure.text = f"{gate.verdict}{advisory}: {reason}"
    out = ET.SubElement(case, "system-out")
    out.text = f"{gate.verdict}: {reason}\nevidence: #{gate.evidence}"


def junit_xml(signoff: Signoff, *, strict: bool = False, hostname: str = "localhost") -> str:
    """The JUnit XML document of ``signoff`` (pure). ``strict`` is the policy's: a required
    WARN is then a failure, as it fails the overall verdict."""
    gates = signoff.failing_first()
    failures = sum(_is_failure(g, strict=strict) for g in gates)
    started = signoff.started.astimezone(timezone.utc) if signoff.started.tzinfo else signoff.started
    seconds = max(0.0, (signoff.finished - signoff.started).total_seconds())
    suite = ET.Element("testsuite", name=SUITE_NAME, tests=str(len(gates)), failures=str(failures),
                       errors="0", skipped="0", time=f"{seconds:.3f}",
                       timestamp=started.strftime("%Y-%m-%dT%H:%M:%S"), hostname=_text(hostname))
    props = ET.SubElement(suite, "properties")
    counts = {v: sum(g.verdict == v for g in gates) for v in ("PASS", "WARN", "FAIL")}
    for name, value in (("verdict", signoff.verdict), ("strict", str(strict).lower()),
                        ("passed", counts["PASS"]), ("warnings", counts["WARN"]), ("failed", counts["FAIL"]),
                        *sorted((f"input.{k}", v) for k, v in signoff.inputs.items()),
                        *sorted((f"headroom.{k}", v) for k, v in signoff.headroom.items())):
        ET.SubElement(props, "property", name=_text(name), value=_text(value))
    for gate in gates:
        _testcase(suite, gate, strict=strict)
    out = ET.SubElement(suite, "system-out")
    out.text = f"sign-off verdict: {signoff.verdict} ({counts['FAIL']} FAIL, {counts['WARN']} WARN, " \
               f"{counts['PASS']} PASS)"
    ET.SubElement(suite, "system-err")
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
