"""A sign-off as a few lines of Markdown to paste into a change request.

A change request wants the verdict, what failed and what was judged, not the evidence itself
(that is the HTML report, linked). So: the verdict first, then the inputs that produced it
(profile, provider, node type and count, the cluster context or "twin of the plan"), the kit's
version and commit, the link to the report, and one table row per gate, failing gates first.
Text that comes from gates or inputs is escaped for a table cell: ``|`` would end the cell,
a line break the row, ``<`` would start HTML in GitHub and GitLab; long reasons are cut.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

from .records import Signoff

MAX_REASON_CHARS = 240
_VERDICT_MARK = {"PASS": "PASS", "WARN": "**WARN**", "FAIL": "**FAIL**"}


def cell(text: object, *, limit: int | None = None) -> str:
    """``text`` safe inside a Markdown table cell: one line, pipes and backslashes escaped,
    ``<``/``>``/``&`` as entities; cut to ``limit`` characters (ending in ``...``)."""
    s = " ".join(str(text).splitlines()).strip()  # \r, \u2028 ... too
    if limit is not None and len(s) > limit:
        s = s[: limit - 3].rstrip() + "..."
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return s.replace("\\", "\\\\").replace("|", "\\|")


def _inline(text: object) -> str:
    """Escaped like a cell (outside a table a pipe does no harm, but the same rule is simpler)."""
    return cell(text, limit=MAX_REASON_CHARS)


def _utc(t: datetime) -> datetime:
    return t.astimezone(timezone.utc) if t.tzinfo else t


def describe_inputs(inputs: Mapping[str, Any]) -> str:
    """"recommended profile, gke, 3 x n2-standard-8, twin of the plan" from a run's inputs
    (plain text; :func:`cell` it for Markdown)."""
    nodes = inputs.get("nodes")
    count = f"{nodes} x " if nodes not in (None, 0, "") else "the recommended count of "
    parts = [f"{inputs.get('profile', '?')} profile", str(inputs.get("provider", "?")),
             f"{count}{inputs.get('node_type', '?')}"]
    if inputs.get("mesh") not in (None, "", "none"):
        parts.append(f"mesh {inputs['mesh']}")
    context = inputs.get("context")
    parts.append(f"context {context}" if context else "twin of the plan")
    if inputs.get("usage"):
        parts.append(f"usage from {inputs['usage']}")
    return ", ".join(" ".join(str(p).splitlines()) for p in parts)


def markdown_summary(signoff: Signoff, *, report_link: str | None = None, kit_version: str | None = None,
                     git_commit: str | None = None) -> str:
    """The Markdown summary of ``signoff``. ``kit_version`` and ``git_commit`` default to the
    running kit's (``report.kit_version``/``report.git_commit``: reads package metadata, asks
    git)."""
    if kit_version is None or git_commit is None:
        from .. import report
        kit_version = report.kit_version() if kit_version is None else kit_version
        git_commit = (report.git_commit() or "not a git checkout") if git_commit is None else git_commit
    gates = signoff.failing_first()
    failed = [g for g in gates if g.verdict == "FAIL"]
    warned = [g for g in gates if g.verdict == "WARN"]
    counts = f"{len(failed)} FAIL, {len(warned)} WARN, {len(gates) - len(failed) - len(warned)} PASS " \
             f"of {len(gates)} gates"
    lines = [f"## Capacity sign-off: **{signoff.verdict}**", ""]
    if failed:
        lines.append("Failing: " + ", ".join(cell(g.name) for g in failed) + ".")
    lines += [f"- Gates: {counts}",
              f"- Inputs: {_inline(describe_inputs(signoff.inputs))}",
              f"- Run: {_utc(signoff.started):%Y-%m-%d %H:%M:%S} UTC, "
              f"{max(0.0, (signoff.finished - signoff.started).total_seconds()):.0f} s",
              f"- Kit: eafix-capacity {_inline(kit_version)}, commit {_inline(git_commit)}"]
    if report_link:
        lines.append(f"- Report: {_inline(report_link)}")
    lines += ["", "| gate | verdict | reason |", "|---|---|---|"]
    for g in gates:
        mark = _VERDICT_MARK[g.verdict] + ("" if g.required else " (advisory)")
        lines.append(f"| {cell(g.name)} | {mark} | {cell(g.reason, limit=MAX_REASON_CHARS)} |")
    if not gates:
        lines.append("| (none) | **FAIL** | no gate was judged |")
    return "\n".join(lines) + "\n"
