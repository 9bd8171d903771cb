"""The sign-off report's HTML: the verdict first, the gates failing first, each gate's evidence.

The report is read by whoever approves the change request, often from the HTML export alone,
so every gate in the table links to its evidence section (``#evidence-<gate>``, the id
:func:`~eafix_capacity.signoff.records.evidence_anchor` gives it), and each section carries the
gate's one-line reason, its figures and, for a rehearsal, every step it recorded. Pure: each
function takes records and returns an HTML string (escaped) for ``IPython.display.HTML``; the
notebook shows the charts next to them.
"""
from __future__ import annotations

import html
from typing import Any, Iterable, Mapping, Sequence

from .records import GateResult, Rehearsal, Signoff

COLOURS = {"PASS": "#1a7f37", "WARN": "#9a6700", "FAIL": "#cf222e"}


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def badge(verdict: str) -> str:
    colour = COLOURS.get(verdict, "#57606a")
    return (f'<span style="background:{colour};color:#fff;padding:1px 6px;border-radius:3px;'
            f'font-weight:bold">{_e(verdict)}</span>')


def verdict_html(signoff: Signoff) -> str:
    """The verdict, the counts of each verdict and the gates that are not a PASS."""
    counts = {v: sum(1 for g in signoff.gates if g.verdict == v) for v in ("FAIL", "WARN", "PASS")}
    lines = [f'<h2 style="margin:0">Sign-off: {badge(signoff.verdict)}</h2>',
             "<p>" + ", ".join(f"{n} {v}" for v, n in counts.items()) + f" of {len(signoff.gates)} gates; "
             f"{len(signoff.rehearsals)} rehearsals on the twin</p>"]
    failing = [g for g in signoff.failing_first() if g.verdict != "PASS"]
    if failing:
        lines.append("<ul>" + "".join(
            f'<li>{badge(g.verdict)} <a href="#{g.evidence}">{_e(g.name)}</a>'
            f'{"" if g.required else " (not required)"}: {_e(g.reason)}</li>' for g in failing) + "</ul>")
    return "\n".join(lines)


def gates_table(gates: Sequence[GateResult]) -> str:
    """Every gate, failing first: verdict, name (a link to its evidence), group, required, reason."""
    order = {"FAIL": 0, "WARN": 1, "PASS": 2}
    rows = "".join(
        f'<tr><td>{badge(g.verdict)}</td><td><a href="#{g.evidence}">{_e(g.name)}</a></td><td>{_e(g.group)}</td>'
        f'<td>{"yes" if g.required else "no"}</td><td style="text-align:left">{_e(g.reason)}</td></tr>'
        for g in sorted(gates, key=lambda g: order[g.verdict]))
    return ('<table><thead><tr><th>verdict</th><th>gate</th><th>group</th><th>required</th><th>reason</th></tr>'
            f"</thead><tbody>{rows}</tbody></table>")


def figures_table(figures: Mapping[str, Any]) -> str:
    if not figures:
        return ""
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(_figure(v))}</td></tr>" for k, v in figures.items())
    return f"<table><thead><tr><th>figure</th><th>value</th></tr></thead><tbody>{rows}</tbody></table>"


def _figure(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1e6 else f"{v:,.0f}"
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    return str(v)


def gate_section(gate: GateResult, *, body: str = "") -> str:
    """A gate's evidence section: its anchor, verdict and reason, its figures, then ``body``."""
    required = "" if gate.required else " (not required: cannot fail the sign-off)"
    return (f'<section id="{gate.evidence}"><h3>{badge(gate.verdict)} {_e(gate.name)}{_e(required)}</h3>'
            f"<p>{_e(gate.reason)}</p>{figures_table(gate.figures)}{body}</section>")


def sections(gates: Iterable[GateResult], *, groups: Sequence[str]) -> str:
    """The evidence sections of the gates of ``groups``, failing first."""
    order = {"FAIL": 0, "WARN": 1, "PASS": 2}
    chosen = sorted((g for g in gates if g.group in groups), key=lambda g: order[g.verdict])
    return "\n".join(gate_section(g) for g in chosen) or "<p>No gate of this kind was judged.</p>"


def rehearsal_gate(signoff: Signoff, rehearsal: Rehearsal) -> GateResult | None:
    """The gate that judged ``rehearsal`` (``rehearsal:<name>``)."""
    return next((g for g in signoff.gates if g.name == f"rehearsal:{rehearsal.name}"), None)


def steps_table(rehearsal: Rehearsal) -> str:
    """Every step of a rehearsal: time, action, nodes, Pending pods and why, evictions a PDB
    refused and for how long, and the Ready replicas of the services below their desired count."""
    rows = []
    for o in rehearsal.observations:
        pending = "; ".join(f"{p.name}: {p.reason}" for p in o.pending) or "-"
        blocked = "; ".join(f"{b.pod} by {b.pdb or '?'} for {b.seconds:g}s" for b in o.blocked) or "-"
        short = ", ".join(f"{s} {n}/{rehearsal.desired.get(s, '?')}" for s, n in sorted(o.ready.items())
                          if n < rehearsal.desired.get(s, 0)) or "all desired"
        rows.append(f"<tr><td>{o.step}</td><td>{o.at:%H:%M:%S}</td><td style=\"text-align:left\">{_e(o.action)}</td>"
                    f"<td>{o.nodes}</td><td style=\"text-align:left\">{_e(pending)}</td>"
                    f"<td style=\"text-align:left\">{_e(blocked)}</td><td style=\"text-align:left\">{_e(short)}</td></tr>")
    return ("<table><thead><tr><th>step</th><th>sim time</th><th>action</th><th>nodes</th><th>pending (why)</th>"
            "<th>evictions refused</th><th>ready below desired</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def min_ready_table(rehearsal: Rehearsal) -> str:
    """Per service: desired, the lowest Ready seen and what its PDB requires."""
    names = sorted(set(rehearsal.desired) | set(rehearsal.min_ready))
    rows = "".join(
        f"<tr><td>{_e(s)}</td><td>{rehearsal.desired.get(s, '-')}</td><td>{rehearsal.min_ready.get(s, 0)}</td>"
        f"<td>{rehearsal.required_ready.get(s, '-')}</td></tr>" for s in names)
    return ("<table><thead><tr><th>service</th><th>desired</th><th>lowest ready</th><th>PDB requires</th></tr>"
            f"</thead><tbody>{rows}</tbody></table>")


def plans_table(rows: Sequence[Mapping[str, Any]], *, changed_only: bool = True) -> str:
    """A release's old and new plans side by side (``release.compare_plans`` rows): the figures
    that change (every figure with ``changed_only=False``), or a line saying none does."""
    chosen = [r for r in rows if r.get("changed") or not changed_only]
    if not chosen:
        return "<p>The old and new plans are the same in every figure (requests, limits, replicas, nodes).</p>"
    body = "".join(f"<tr><td>{_e(r.get('section'))}</td><td>{_e(r.get('name'))}</td><td>{_e(r.get('field'))}</td>"
                   f"<td>{_e(r.get('old'))}</td><td>{_e(r.get('new'))}</td></tr>" for r in chosen)
    return ("<p>The old and new plans side by side, the figures that change:</p><table><thead><tr><th>section</th>"
            f"<th>name</th><th>figure</th><th>old</th><th>new</th></tr></thead><tbody>{body}</tbody></table>")


def rehearsal_section(signoff: Signoff, rehearsal: Rehearsal) -> str:
    """A rehearsal's evidence: its gate's section, a release's old and new plans side by side,
    its settings, the lowest ready replicas per service and every step (the charts follow it in
    the notebook)."""
    settings = figures_table({str(k): v for k, v in rehearsal.settings.items()})
    plans = rehearsal.details.get("plans")
    body = (f"<p>{'Completed' if rehearsal.completed else 'Did not complete'}: {_e(rehearsal.reason)}</p>"
            + (plans_table(plans) if isinstance(plans, list) else "") +
            f"<p>From {rehearsal.started:%Y-%m-%d %H:%M:%S} to {rehearsal.finished:%H:%M:%S} (sim time), "
            f"{len(rehearsal.observations)} steps.</p>{settings}{min_ready_table(rehearsal)}{steps_table(rehearsal)}")
    gate = rehearsal_gate(signoff, rehearsal)
    if gate is None:
        return f"<section><h3>{_e(rehearsal.name)}</h3>{body}</section>"
    return gate_section(gate, body=body)


__all__ = ["badge", "figures_table", "gate_section", "gates_table", "min_ready_table", "plans_table", "rehearsal_gate",
           "rehearsal_section", "sections", "steps_table", "verdict_html"]
