"""Matplotlib figures the sign-off report shows as evidence of its rehearsals and gates.

A gate's one-line reason says what failed; these say how it got there: per service, the Ready
replicas after each rehearsal step against what its PodDisruptionBudget requires (a dip below
the line is the moment a trading service was at risk); per step, the Ready and schedulable
nodes and the Pending pods and refused evictions (where a drain stalled); and every gate's
verdict at a glance.

As :mod:`eafix_capacity.charts`: each function is pure, takes records
(:mod:`.records`) and returns a new ``Figure`` (no pyplot state, nothing shown or saved, so
no display backend is needed); the numbers behind a figure come from a pure function beside
it (:func:`ready_series`, :func:`step_counts`); counting axes have integer ticks; legends sit
outside the axes. A rehearsal without observations gives a figure that says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from matplotlib.artist import Artist
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..errors import InputError
from .records import GateResult, Rehearsal

VERDICT_COLOURS = {"PASS": "#1b5e20", "WARN": "#e65100", "FAIL": "#b00020"}
GRID_COLUMNS = 4


@dataclass(frozen=True)
class ReadySeries:
    """One service's Ready replicas after each step, and what it must keep."""

    service: str
    steps: tuple[int, ...]
    ready: tuple[int, ...]
    required: int | None
    desired: int | None

    @property
    def below_required(self) -> tuple[int, ...]:
        """The steps where fewer replicas were Ready than the PDB requires."""
        if self.required is None:
            return ()
        return tuple(s for s, r in zip(self.steps, self.ready) if r < self.required)


def ready_series(rehearsal: Rehearsal, services: Sequence[str] | None = None) -> list[ReadySeries]:
    """Per service (``services``, default every one seen, sorted), its Ready count after each
    observation (0 when a step saw none). An unknown service is an ``InputError`` naming those
    the rehearsal has."""
    seen = sorted({s for o in rehearsal.observations for s in o.ready} | set(rehearsal.desired)
                  | set(rehearsal.required_ready))
    if services is None:
        services = seen
    for s in services:
        if s not in seen:
            raise InputError("no such service in the rehearsal", obj=rehearsal.name, field="service", value=s,
                             valid="one of: " + (", ".join(seen) or "(none)"))
    steps = tuple(o.step for o in rehearsal.observations)
    return [ReadySeries(s, steps, tuple(int(o.ready.get(s, 0)) for o in rehearsal.observations),
                        rehearsal.required_ready.get(s), rehearsal.desired.get(s)) for s in services]


def _empty(fig: Figure, rehearsal: Rehearsal, what: str) -> Figure:
    ax = fig.subplots()
    ax.set_axis_off()
    ax.text(0.5, 0.5, f"{rehearsal.name}: no observations ({rehearsal.reason})", ha="center", va="center",
            wrap=True)
    fig.suptitle(f"{what}: {rehearsal.name}")
    return fig


def ready_timeline(rehearsal: Rehearsal, services: Sequence[str] | None = None) -> Figure:
    """Small multiples, one per service: Ready replicas after each step (a step line), its PDB's
    required count (dashed red) and desired replicas (dotted); steps below the required count
    are marked with a red x."""
    series = ready_series(rehearsal, services)
    if not rehearsal.observations or not series:
        return _empty(Figure(figsize=(8, 2.5), layout="constrained"), rehearsal, "Ready replicas")
    cols = min(GRID_COLUMNS, len(series))
    rows = math.ceil(len(series) / cols)
    fig = Figure(figsize=(3.2 * cols, 2.2 * rows + 0.8), layout="constrained")
    axes = fig.subplots(rows, cols, sharex=True, squeeze=False)
    for ax, s in zip(axes.flat, series):
        ax.step(s.steps, s.ready, where="post", color="C0", label="Ready replicas")
        if s.required is not None:
            ax.axhline(s.required, color=VERDICT_COLOURS["FAIL"], linestyle="--", label="required (PDB)")
        if s.desired is not None:
            ax.axhline(s.desired, color="C7", linestyle=":", label="desired")
        low = s.below_required
        if low:
            ax.plot(low, [s.ready[s.steps.index(x)] for x in low], "x", color=VERDICT_COLOURS["FAIL"],
                    label="below required")
        top = max([*s.ready, s.required or 0, s.desired or 0, 1])
        ax.set_ylim(0, top + 0.5)
        ax.set_title(s.service, fontsize="medium")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in list(axes.flat)[len(series):]:
        ax.set_axis_off()
    for ax in axes[-1]:
        ax.set_xlabel("step")
    fig.suptitle(f"Ready replicas per service during {rehearsal.name}")
    handles: dict[str, Artist] = {}
    for ax in axes.flat:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=len(handles), frameon=False)
    return fig


@dataclass(frozen=True)
class StepCounts:
    steps: tuple[int, ...]
    actions: tuple[str, ...]
    nodes: tuple[int, ...]
    pending: tuple[int, ...]
    blocked: tuple[int, ...]


def step_counts(rehearsal: Rehearsal) -> StepCounts:
    """Per observation: its step, action, Ready and schedulable nodes, Pending pods and
    evictions refused."""
    obs = rehearsal.observations
    return StepCounts(tuple(o.step for o in obs), tuple(o.action for o in obs), tuple(o.nodes for o in obs),
                      tuple(len(o.pending) for o in obs), tuple(len(o.blocked) for o in obs))


def rehearsal_steps(rehearsal: Rehearsal) -> Figure:
    """Nodes that take pods after each step (top), Pending pods and evictions refused by a PDB
    (bottom), the step numbers on the shared axis."""
    c = step_counts(rehearsal)
    if not c.steps:
        return _empty(Figure(figsize=(8, 2.5), layout="constrained"), rehearsal, "Rehearsal steps")
    fig = Figure(figsize=(max(8.0, 0.35 * len(c.steps) + 4), 5.5), layout="constrained")
    ax_nodes, ax_pods = fig.subplots(2, 1, sharex=True)
    ax_nodes.step(c.steps, c.nodes, where="post", marker="o", color="C0", label="Ready, schedulable nodes")
    ax_nodes.set_ylabel("nodes")
    ax_nodes.set_ylim(0, max(c.nodes) + 1)
    w = 0.4
    ax_pods.bar([s - w / 2 for s in c.steps], c.pending, w, color="C1", label="Pending pods")
    ax_pods.bar([s + w / 2 for s in c.steps], c.blocked, w, color=VERDICT_COLOURS["FAIL"],
                label="evictions refused (PDB)")
    ax_pods.set_ylabel("pods")
    ax_pods.set_ylim(0, max([*c.pending, *c.blocked, 1]) + 1)
    ax_pods.set_xlabel("step")
    for ax in (ax_nodes, ax_pods):
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    verdict = "completed" if rehearsal.completed else "did not complete"
    fig.suptitle(f"{rehearsal.name}: {verdict}")
    handles, labels = [], []
    for ax in (ax_nodes, ax_pods):
        h, lab = ax.get_legend_handles_labels()
        handles += h
        labels += lab
    fig.legend(handles, labels, loc="outside lower center", ncols=3, frameon=False)
    return fig


def gate_verdicts(gates: Sequence[GateResult]) -> Figure:
    """One row per gate in the order given (pass ``Signoff.failing_first()``), coloured by its
    verdict, advisory gates hatched."""
    n = max(len(gates), 1)
    fig = Figure(figsize=(9, 0.32 * n + 1.2), layout="constrained")
    ax = fig.subplots()
    if not gates:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no gate was judged: the sign-off is a FAIL", ha="center", va="center")
        return fig
    y = list(range(len(gates)))[::-1]
    for yi, g in zip(y, gates):
        ax.barh(yi, 1, color=VERDICT_COLOURS[g.verdict], hatch=None if g.required else "//", edgecolor="white")
        ax.text(0.5, yi, g.verdict + ("" if g.required else " (advisory)"), ha="center", va="center",
                color="white", fontweight="bold")
    ax.set_yticks(y, [g.name for g in gates])
    ax.set_xticks([])
    ax.set_xlim(0, 1)
    counts = {v: sum(g.verdict == v for g in gates) for v in VERDICT_COLOURS}
    ax.set_title(f"Gates: {counts['FAIL']} FAIL, {counts['WARN']} WARN, {counts['PASS']} PASS")
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    return fig
