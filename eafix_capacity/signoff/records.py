"""The records of a capacity sign-off: gates with their verdicts, and what each rehearsal saw.

Every part of the sign-off (the twin, the rehearsals, the gates, the report's outputs) reads
and writes these, so each can be built and tested alone: a rehearsal returns a
:class:`Rehearsal`, a gate function returns a :class:`GateResult`, and the outputs (the
notebook, ``summary.json``, JUnit XML, Markdown, the run index) render a :class:`Signoff`.
Everything here is plain data with ``as_dict`` for JSON; no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Mapping

Verdict = Literal["PASS", "WARN", "FAIL"]
VERDICTS: tuple[Verdict, ...] = ("PASS", "WARN", "FAIL")

GateGroup = Literal["plan", "capacity", "live", "usage", "rehearsal"]
GATE_GROUPS: tuple[GateGroup, ...] = ("plan", "capacity", "live", "usage", "rehearsal")


def evidence_anchor(gate_name: str) -> str:
    """The HTML id of a gate's evidence section in the report (``#evidence-<name>``)."""
    return "evidence-" + "".join(c if c.isalnum() or c == "-" else "-" for c in gate_name.lower())


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict. ``reason`` is one line that says what was judged and why it passed or
    failed; a gate the data cannot judge is a ``WARN`` whose reason says how much data there was,
    never a ``PASS``. ``figures`` are the numbers behind the verdict (JSON-able), for
    ``summary.json`` and the run index."""

    name: str                       # e.g. "plan:baseline-headroom", "n+1:cpu", "rehearsal:nodepool-upgrade"
    group: GateGroup
    verdict: Verdict
    reason: str
    required: bool = True
    figures: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"gate {self.name}: verdict {self.verdict!r} is not one of {', '.join(VERDICTS)}")
        if self.group not in GATE_GROUPS:
            raise ValueError(f"gate {self.name}: group {self.group!r} is not one of {', '.join(GATE_GROUPS)}")
        if "\n" in self.reason or not self.reason:
            raise ValueError(f"gate {self.name}: the reason must be one non-empty line")

    @property
    def evidence(self) -> str:
        return evidence_anchor(self.name)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "group": self.group, "verdict": self.verdict, "reason": self.reason,
                "required": self.required, "evidence": "#" + self.evidence, "figures": dict(self.figures)}


def overall_verdict(gates: tuple[GateResult, ...] | list[GateResult], *, strict: bool = False) -> Verdict:
    """FAIL when a required gate fails (or, with ``strict``, is a WARN); WARN when any gate is not
    a PASS; PASS only when every gate passed. No gates at all is a FAIL: nothing was judged."""
    if not gates:
        return "FAIL"
    required = [g for g in gates if g.required]
    if any(g.verdict == "FAIL" for g in required) or (strict and any(g.verdict == "WARN" for g in required)):
        return "FAIL"
    if any(g.verdict != "PASS" for g in gates):
        return "WARN"
    return "PASS"


# --- what a rehearsal sees ----------------------------------------------------------------------

@dataclass(frozen=True)
class PendingPod:
    """A pod that is not scheduled, with the scheduler's reason (its PodScheduled condition)."""

    namespace: str
    name: str
    service: str                    # app.kubernetes.io/name, "" when unlabelled
    reason: str


@dataclass(frozen=True)
class BlockedEviction:
    """An eviction the API server refused (429: a PodDisruptionBudget would be violated)."""

    namespace: str
    pod: str
    pdb: str                        # the PDB named in the refusal, "" when the message names none
    first_refused: datetime
    seconds: float                  # refused for this long so far (sim or wall clock)
    message: str


@dataclass(frozen=True)
class Observation:
    """The cluster as one rehearsal step left it."""

    at: datetime
    step: int
    action: str                     # one line: "surge: added node gke-...-s1", "drain gke-...-2", ...
    nodes: int                      # nodes that are Ready and schedulable
    pending: tuple[PendingPod, ...] = ()
    blocked: tuple[BlockedEviction, ...] = ()
    ready: Mapping[str, int] = field(default_factory=dict)    # service -> Ready replicas

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "step": self.step, "action": self.action, "nodes": self.nodes,
                "pending": [vars(p) for p in self.pending],
                "blocked": [{**vars(b), "first_refused": b.first_refused.isoformat()} for b in self.blocked],
                "ready": dict(self.ready)}


RehearsalKind = Literal["nodepool-upgrade", "release-rollout", "node-loss", "zone-loss"]


@dataclass(frozen=True)
class Rehearsal:
    """One rehearsal on the twin, from its first step to its last.

    ``completed`` is whether the procedure finished (every node replaced, every rollout done,
    every evicted pod running again); ``reason`` is one line saying what finished or what
    stopped it (for a drain past its timeout: the PDB and the pods that blocked it, the
    provider's ``PodDrainFailure``). ``min_ready`` is the lowest number of Ready replicas seen
    per service over every observation; ``required_ready`` what each must keep (its PDB's
    minAvailable, resolved to a count). ``settings`` are the procedure's inputs (provider,
    max surge, max unavailable, drain timeout, node types, the lost node ...) and ``details``
    any further evidence (JSON-able: a release's old and new plans side by side)."""

    name: str                       # "nodepool-upgrade", "release-rollout", "node-loss:<node>", "zone-loss:<zone>"
    kind: RehearsalKind
    completed: bool
    reason: str
    started: datetime
    finished: datetime
    observations: tuple[Observation, ...]
    min_ready: Mapping[str, int]
    desired: Mapping[str, int]              # service -> desired replicas
    required_ready: Mapping[str, int]       # service -> PDB minAvailable as a count
    longest_block_seconds: float = 0.0
    pending_at_end: tuple[PendingPod, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "completed": self.completed, "reason": self.reason,
                "started": self.started.isoformat(), "finished": self.finished.isoformat(),
                "observations": [o.as_dict() for o in self.observations],
                "min_ready": dict(self.min_ready), "desired": dict(self.desired),
                "required_ready": dict(self.required_ready),
                "longest_block_seconds": self.longest_block_seconds,
                "pending_at_end": [vars(p) for p in self.pending_at_end],
                "settings": dict(self.settings), "details": dict(self.details)}


# --- the whole sign-off --------------------------------------------------------------------------

@dataclass(frozen=True)
class Signoff:
    """A sign-off run's result: the verdict, every gate, every rehearsal and the inputs.

    ``headroom`` are the figures the run index charts across runs (e.g. ``cpu_n_plus_1_pct``:
    allocatable left after losing the largest node, as a percentage of the requests)."""

    verdict: Verdict
    gates: tuple[GateResult, ...]
    rehearsals: tuple[Rehearsal, ...]
    started: datetime
    finished: datetime
    inputs: Mapping[str, Any] = field(default_factory=dict)
    headroom: Mapping[str, float] = field(default_factory=dict)

    def failing_first(self) -> list[GateResult]:
        """The gates in the report's order: FAIL, then WARN, then PASS; otherwise as judged."""
        order = {"FAIL": 0, "WARN": 1, "PASS": 2}
        return sorted(self.gates, key=lambda g: order[g.verdict])

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "started": self.started.isoformat(), "finished": self.finished.isoformat(),
                "gates": [g.as_dict() for g in self.failing_first()],
                "rehearsals": [r.as_dict() for r in self.rehearsals],
                "inputs": dict(self.inputs), "headroom": dict(self.headroom)}
