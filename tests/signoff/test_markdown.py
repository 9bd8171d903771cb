"""The Markdown summary for a change request: verdict first, failing first, cells escaped."""
from __future__ import annotations

from eafix_capacity.signoff.markdown import MAX_REASON_CHARS, cell, markdown_summary
from eafix_capacity.signoff.records import GateResult

from .outputs_helpers import signoff


def _md(s, **kw) -> str:
    return markdown_summary(s, kit_version="9.9.9", git_commit="abc123", **kw)


def _table(text: str) -> list[list[str]]:
    """The table's rows split on unescaped pipes."""
    import re
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", r)[1:-1]] for r in rows]


def test_the_verdict_comes_first_then_the_failing_gates():
    text = _md(signoff(), report_link="reports/20261201T060000Z-1/05_upgrade_signoff.html")
    lines = text.splitlines()
    assert lines[0] == "## Capacity sign-off: **FAIL**"
    assert "Failing: n+1:cpu." in text
    rows = _table(text)
    assert rows[0] == ["gate", "verdict", "reason"]
    assert [r[0] for r in rows[1:]] == ["n+1:cpu", "usage:samples:risk-manager", "plan:baseline-headroom",
                                        "rehearsal:nodepool-upgrade"]
    assert [r[1] for r in rows[1:]] == ["**FAIL**", "**WARN**", "PASS", "PASS"]
    assert "- Report: reports/20261201T060000Z-1/05_upgrade_signoff.html" in lines
    assert "- Kit: eafix-capacity 9.9.9, commit abc123" in lines
    assert "- Gates: 1 FAIL, 1 WARN, 2 PASS of 4 gates" in lines
    assert "- Run: 2026-12-01 06:00:00 UTC, 42 s" in lines


def test_the_inputs_say_twin_of_the_plan_or_the_context():
    twin = _md(signoff())
    assert "- Inputs: recommended profile, gke, 3 x n2-standard-8, twin of the plan" in twin
    live = _md(signoff(context="prod-eu", nodes=None, usage="/data/usage"))
    assert ("- Inputs: recommended profile, gke, the recommended count of n2-standard-8, context prod-eu, "
            "usage from /data/usage") in live


def test_pipes_newlines_and_markup_in_reasons_and_inputs_are_escaped():
    gates = (GateResult("plan:a|b", "plan", "FAIL", "cpu | memory <b>over</b> \\ by 3"),)
    text = _md(signoff(gates, context="ctx|with\nnewline"))
    rows = _table(text)
    assert len(rows) == 2 and len(rows[1]) == 3, rows
    assert rows[1][0] == "plan:a\\|b"
    assert rows[1][2] == "cpu \\| memory &lt;b&gt;over&lt;/b&gt; \\\\ by 3"
    assert "context ctx\\|with newline" in text
    assert all(not line.startswith("newline") for line in text.splitlines())


def test_a_long_reason_is_cut_and_the_whole_summary_stays_short():
    gates = tuple(GateResult(f"usage:cpu-request:svc-{i}", "usage", "WARN", "x" * 1000) for i in range(20))
    text = _md(signoff(gates))
    rows = _table(text)[1:]
    assert all(len(r[2]) == MAX_REASON_CHARS and r[2].endswith("...") for r in rows)
    assert len(text.splitlines()) < 40


def test_no_gates_is_said_not_left_as_an_empty_table():
    text = _md(signoff(()))
    assert text.splitlines()[0] == "## Capacity sign-off: **FAIL**"
    assert _table(text)[1] == ["(none)", "**FAIL**", "no gate was judged"]


def test_the_kit_version_and_commit_default_to_the_running_kits(monkeypatch):
    from eafix_capacity import report
    monkeypatch.setattr(report, "kit_version", lambda: "1.2.3")
    monkeypatch.setattr(report, "git_commit", lambda: None)
    assert "- Kit: eafix-capacity 1.2.3, commit not a git checkout" in markdown_summary(signoff())


def test_cell_escapes_in_the_right_order():
    assert cell("a\\|b") == "a\\\\\\|b"        # the backslash first, so the pipe's escape survives
    assert cell("one\r\ntwo\u2028three") == "one two three"
