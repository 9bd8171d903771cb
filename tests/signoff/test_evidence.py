"""The sign-off report's HTML (eafix_capacity/signoff/evidence.py): the verdict first, every gate
linked to its evidence section, each value escaped, a rehearsal's steps and a release's plans."""
from __future__ import annotations

import re
from dataclasses import replace
from html.parser import HTMLParser

from eafix_capacity.signoff import evidence
from eafix_capacity.signoff.records import GateResult

from .outputs_helpers import gates_mixed, rehearsal, signoff


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.append(str(a["id"]))
        if a.get("href"):
            self.hrefs.append(str(a["href"]))
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, (self.open, tag)
        self.open.pop()


def _parse(text: str) -> _Tags:
    p = _Tags()
    p.feed(text)
    p.close()
    assert p.open == [], p.open          # every element closed, in order
    return p


def test_the_verdict_comes_first_with_the_gates_that_are_not_a_pass_linked():
    s = signoff()
    text = evidence.verdict_html(s)
    assert text.startswith("<h2") and ">FAIL<" in text.split("</h2>")[0]
    assert "1 FAIL, 1 WARN, 2 PASS of 4 gates; 1 rehearsals on the twin" in text
    links = _parse(text).hrefs
    assert links == ["#evidence-n-1-cpu", "#evidence-usage-samples-risk-manager"]   # FAIL first, no PASS


def test_every_gate_in_the_table_links_to_its_section():
    s = signoff()
    table = _parse(evidence.gates_table(s.gates))
    assert table.hrefs == ["#" + g.evidence for g in s.failing_first()]
    sections = _parse("".join(evidence.sections(s.gates, groups=[g]) for g in ("plan", "capacity", "usage",
                                                                                  "rehearsal")))
    assert sorted(sections.ids) == sorted(g.evidence for g in s.gates)
    assert evidence.sections(s.gates, groups=["live"]) == "<p>No gate of this kind was judged.</p>"


def test_reasons_and_figures_are_escaped():
    g = GateResult("n+1:cpu", "capacity", "FAIL", 'requests <30> & "quoted" </section>',
                   figures={"<b>": "x&y", "pct": 12.3456})
    text = evidence.gate_section(g)
    _parse(text)
    assert "&lt;30&gt; &amp; &quot;quoted&quot; &lt;/section&gt;" in text and "<b>" not in text
    assert "&lt;b&gt;" in text and "x&amp;y" in text and "12.35" in text
    assert "not required" not in text
    assert "(not required: cannot fail the sign-off)" in evidence.gate_section(replace(g, required=False))


def test_a_rehearsal_section_has_its_steps_its_lowest_ready_and_its_gate():
    s = signoff(gates=(*gates_mixed(),))
    r = rehearsal()
    text = evidence.rehearsal_section(s, r)
    tags = _parse(text)
    assert tags.ids == ["evidence-rehearsal-nodepool-upgrade"]
    rows = re.findall(r"<tr><td>(\d+)</td><td>(\d\d:\d\d:\d\d)</td>", text)
    assert [int(n) for n, _ in rows] == [o.step for o in r.observations]
    assert "order-router-0 by order-router for 5s" in text                     # the refused eviction
    assert "risk-manager-2: 0/3 nodes are available" in text                   # the Pending pod and why
    assert "order-router 1/2" in text                                          # below its desired count
    assert "<td>order-router</td><td>2</td><td>1</td><td>2</td>" in text        # desired, lowest, PDB
    assert "side by side" not in text                                          # no release details


def test_a_release_shows_the_plans_side_by_side_and_says_when_nothing_changes():
    rows = [{"section": "service", "name": "risk-manager", "field": "cpu_request_m", "old": 300, "new": 600,
             "changed": True},
            {"section": "cluster", "name": "nodes", "field": "nodes", "old": 3, "new": 3, "changed": False}]
    r = replace(rehearsal(), name="release-rollout", kind="release-rollout", details={"plans": rows})
    text = evidence.rehearsal_section(signoff(), r)
    assert "<td>service</td><td>risk-manager</td><td>cpu_request_m</td><td>300</td><td>600</td>" in text
    assert "<td>cluster</td>" not in text
    assert "plans are the same" in evidence.plans_table(rows[1:])
    assert text.startswith("<section><h3>release-rollout</h3>")   # no gate judged it in this sign-off
