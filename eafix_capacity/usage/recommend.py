"""Right-sizing: the record every strategy returns, and what a user does with it.

The strategies (``usage/strategies/``) are pure functions of the samples, as krr's are of
its Prometheus history. This module holds what they share and what follows from their
result: krr's severity of a change, the session window ``session-peak`` reads
(``london,new_york`` or ``08:00-20:00 UTC weekdays``), the JSON ``usage recommend`` prints,
a services.yaml with the recommended figures in which every changed figure's ``source``
says where it came from, and the plan's node count on that catalogue next to the current
one (plan -> deploy -> observe -> re-plan).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..catalog import Catalog, Container, Resources, Service, catalog_from_dict
from ..errors import InputError
from ..quantity import from_bytes, from_milli
from ..scheduling import Toleration

if TYPE_CHECKING:
    from ..inputs import PlanParams
    from ..plan import Plan

MiB = 2**20

# ------------------------------------------------------------------ severity

GOOD, OK, WARNING, CRITICAL, UNKNOWN = "GOOD", "OK", "WARNING", "CRITICAL", "UNKNOWN"
SEVERITIES = (CRITICAL, WARNING, OK, GOOD, UNKNOWN)
"""Worst first: the order krr's ``ResourceScan.calculate`` picks a scan's severity in."""
CPU_THRESHOLDS_M = (500, 250, 100)
"""CRITICAL / WARNING / OK at an absolute change of at least 0.5, 0.25, 0.1 core
(robusta_krr/core/models/severity.py ``cpu_severity_calculator``)."""
MEMORY_THRESHOLDS_BYTES = (500 * MiB, 250 * MiB, 100 * MiB)
"""The same for memory: 500, 250, 100 MiB (``memory_severity_calculator``)."""


def severity(current: int | None, recommended: int | None, *, resource: str, unknown: bool = False) -> str:
    """krr's severity of one figure's change: ``?`` is UNKNOWN, both unset GOOD, one side
    unset WARNING, else by the absolute change (robusta_krr/core/models/severity.py)."""
    if unknown:
        return UNKNOWN
    if current is None and recommended is None:
        return GOOD
    if current is None or recommended is None:
        return WARNING
    critical, warning, ok = CPU_THRESHOLDS_M if resource == "cpu" else MEMORY_THRESHOLDS_BYTES
    diff = abs(current - recommended)
    if diff >= critical:
        return CRITICAL
    if diff >= warning:
        return WARNING
    if diff >= ok:
        return OK
    return GOOD


def worst(*levels: str) -> str:
    """The first of ``SEVERITIES`` among ``levels`` (krr's precedence)."""
    for level in SEVERITIES:
        if level in levels:
            return level
    return UNKNOWN


# ------------------------------------------------------------------ the record

FIGURES = ("cpu_request_m", "cpu_limit_m", "memory_request_bytes", "memory_limit_bytes")


@dataclass(frozen=True)
class Figures:
    """A container's requests and limits; None where unset (or, in a recommendation, ``?``)."""

    cpu_request_m: int | None = None
    cpu_limit_m: int | None = None
    memory_request_bytes: int | None = None
    memory_limit_bytes: int | None = None

    def as_dict(self) -> dict[str, int | None]:
        return {f: getattr(self, f) for f in FIGURES}


@dataclass(frozen=True)
class Recommendation:
    """One container of one workload: what it asks for now and what it should ask for."""

    namespace: str
    workload: str
    """The service (the pods' ``app.kubernetes.io/name``; the pod's name when it has none)."""
    container: str
    current: Figures
    recommended: Figures
    """None where unset (``simple`` sets no CPU limit) or ``?`` (see ``cpu_unknown``)."""
    cpu_severity: str
    memory_severity: str
    samples: int
    """Sampling instants with at least one figure (gaps, ``None``, are not samples)."""
    cpu_samples: int
    memory_samples: int
    pods: int
    strategy: str
    window: str
    info: tuple[str, ...] = ()
    cpu_unknown: bool = False
    """True when the CPU figures are ``?`` (not enough data, HPA detected)."""
    memory_unknown: bool = False
    oom_kills: int = 0
    lower: Figures | None = None
    """The VPA recommender's lower bound (``vpa`` only)."""
    upper: Figures | None = None
    """The VPA recommender's upper bound (``vpa`` only)."""
    first: datetime | None = None
    last: datetime | None = None

    @property
    def severity(self) -> str:
        return worst(self.cpu_severity, self.memory_severity)

    @property
    def change(self) -> dict[str, int | None]:
        """Recommended minus current per figure; None where either side is unset or ``?``."""
        out: dict[str, int | None] = {}
        for f in FIGURES:
            cur, rec = getattr(self.current, f), getattr(self.recommended, f)
            out[f] = None if cur is None or rec is None else rec - cur
        return out

    def as_dict(self) -> dict[str, Any]:
        """The JSON row: recommended figures (null where unset or ``?``), severity per resource."""
        return {
            "namespace": self.namespace, "workload": self.workload, "container": self.container,
            **self.recommended.as_dict(),
            "severity": {"cpu": self.cpu_severity, "memory": self.memory_severity},
            "samples": self.samples,
            "info": "; ".join(self.info) if self.info else None,
        }

    def as_row(self) -> dict[str, Any]:
        """A flat row for a table or CSV: current, recommended and change per figure."""
        row: dict[str, Any] = {"namespace": self.namespace, "workload": self.workload,
                               "container": self.container}
        change = self.change
        for f in FIGURES:
            unknown = self.cpu_unknown if f.startswith("cpu") else self.memory_unknown
            row[f"current_{f}"] = getattr(self.current, f)
            row[f"recommended_{f}"] = "?" if unknown else getattr(self.recommended, f)
            row[f"change_{f}"] = change[f]
        row.update({"cpu_severity": self.cpu_severity, "memory_severity": self.memory_severity,
                    "samples": self.samples, "window": self.window, "strategy": self.strategy,
                    "info": "; ".join(self.info)})
        return row


def finish(*, namespace: str, workload: str, container: str, current: Figures, recommended: Figures,
           cpu_unknown: bool, memory_unknown: bool, oom_kills: int, **rest: Any) -> Recommendation:
    """A recommendation with krr's severities: per resource the worse of request and limit,
    and memory CRITICAL after an OOM kill (robusta_krr/core/models/result.py)."""
    cpu = worst(*(severity(getattr(current, f), getattr(recommended, f), resource="cpu", unknown=cpu_unknown)
                  for f in ("cpu_request_m", "cpu_limit_m")))
    mem = worst(*(severity(getattr(current, f), getattr(recommended, f), resource="memory",
                           unknown=memory_unknown)
                  for f in ("memory_request_bytes", "memory_limit_bytes")))
    if oom_kills > 0:
        mem = CRITICAL
    return Recommendation(namespace=namespace, workload=workload, container=container, current=current,
                          recommended=recommended, cpu_severity=cpu, memory_severity=mem,
                          cpu_unknown=cpu_unknown, memory_unknown=memory_unknown, oom_kills=oom_kills, **rest)


def recommend(frame: pd.DataFrame, terminations: Iterable[Any] = (), *, strategy: str = "simple",
              settings: Any = None) -> list[Recommendation]:
    """``usage.strategies.recommend`` (imported here on use: the strategies import this module)."""
    from .strategies import recommend as run
    return run(frame, terminations, strategy=strategy, settings=settings)


def as_json(recommendations: Iterable[Recommendation]) -> dict[str, Any]:
    """``usage recommend --format json``: ``{"recommendations": [...]}``."""
    return {"recommendations": [r.as_dict() for r in recommendations]}


def as_frame(recommendations: Iterable[Recommendation]) -> pd.DataFrame:
    """The table and CSV form (``Recommendation.as_row`` per row)."""
    rows = [r.as_row() for r in recommendations]
    # object columns: an unset or ``?`` figure stays None / "?" instead of becoming NaN
    return pd.DataFrame(rows, dtype=object) if rows else pd.DataFrame(columns=list(_TABLE_COLUMNS), dtype=object)


_TABLE_COLUMNS = tuple(Recommendation("", "", "", Figures(), Figures(), GOOD, GOOD, 0, 0, 0, 0, "", "").as_row())


# ------------------------------------------------------------------ session window

WEEKDAYS = frozenset(range(5))
ALL_DAYS = frozenset(range(7))
_DAYS: Mapping[str, frozenset[int]] = MappingProxyType(
    {"weekdays": WEEKDAYS, "weekends": frozenset({5, 6}), "daily": ALL_DAYS})
_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})")
WINDOW_HELP = ("session names from the usage model separated by commas (e.g. london,new_york), "
               "HH:MM-HH:MM UTC [weekdays|weekends|daily] (e.g. 08:00-20:00 UTC weekdays), or all")


@dataclass(frozen=True)
class SessionWindow:
    """Hours of the week a ``session-peak`` recommendation reads: UTC minute-of-day ranges
    ``[open, close)`` on the given weekdays (0 = Monday)."""

    label: str
    ranges: tuple[tuple[int, int], ...]
    days: frozenset[int] = WEEKDAYS

    @property
    def everything(self) -> bool:
        return self.days == ALL_DAYS and any(lo <= 0 and hi >= 1440 for lo, hi in self.ranges)

    def mask(self, timestamps: pd.Series | pd.DatetimeIndex) -> np.ndarray:
        """True for each (UTC) timestamp inside the window."""
        ts = pd.DatetimeIndex(timestamps)
        if ts.tz is not None:
            ts = ts.tz_convert("UTC")
        minute = ts.hour.to_numpy() * 60 + ts.minute.to_numpy() + ts.second.to_numpy() / 60.0
        inside = np.zeros(len(ts), dtype=bool)
        for lo, hi in self.ranges:
            inside |= (minute >= lo) & (minute < hi)
        if self.days != ALL_DAYS:
            inside &= np.isin(ts.day_of_week.to_numpy(), sorted(self.days))
        return inside


ALL_HOURS = SessionWindow("all hours", ((0, 1440),), ALL_DAYS)


def default_sessions() -> dict[str, tuple[int, int]]:
    """The sessions of the shipped usage model (data/usage-model.yaml), as minute ranges."""
    from ..sim.usage_model import load_usage_model
    return {s.name: (s.open_minute, s.close_minute) for s in load_usage_model().sessions}


def parse_window(text: object, *, sessions: Mapping[str, tuple[int, int]] | None = None,
                 source: str = "--window") -> SessionWindow:
    """``london,new_york`` (the usage model's sessions, weekdays as it says),
    ``08:00-20:00 UTC weekdays`` (ranges may be comma-separated; ``24:00`` closes at
    midnight; days default to daily) or ``all``; anything else is a one-line InputError."""
    if not isinstance(text, str) or not text.strip():
        raise InputError("empty session window", field=source, value=text, valid=WINDOW_HELP)
    raw = " ".join(text.split())
    if raw.lower() in ("all", "all hours"):
        return ALL_HOURS
    head, *rest = raw.split(" ")
    if ":" not in head and not head[:1].isdigit():
        if rest:
            raise InputError("unexpected text after the session names", field=source, value=text,
                             valid=WINDOW_HELP)
        known = dict(sessions) if sessions is not None else default_sessions()
        names = [n.strip() for n in head.split(",")]
        ranges: list[tuple[int, int]] = []
        for name in names:
            if name not in known:
                raise InputError("unknown session", field=source, value=name or text,
                                 valid="one of: " + ", ".join(known) + f" (or {WINDOW_HELP})")
            ranges.append(known[name])
        return SessionWindow(",".join(names), tuple(ranges), WEEKDAYS)
    spans = tuple(_time_range(part, text=text, source=source) for part in head.split(","))
    days = ALL_DAYS
    words = [w.lower() for w in rest]
    if words and words[0] in ("utc", "z"):
        words = words[1:]
    elif words and words[0] not in _DAYS:
        raise InputError("only UTC session windows are supported", field=source, value=rest[0],
                         valid="write the hours in UTC, e.g. 08:00-20:00 UTC weekdays")
    if words:
        if words[0] not in _DAYS or len(words) > 1:
            raise InputError("unknown days", field=source, value=" ".join(rest),
                             valid="weekdays, weekends or daily (the default)")
        days = _DAYS[words[0]]
    label = ",".join(f"{_hhmm(lo)}-{_hhmm(hi)}" for lo, hi in spans) + " UTC" + (
        "" if days == ALL_DAYS else " " + next(k for k, v in _DAYS.items() if v == days))
    return SessionWindow(label, spans, days)


def _time_range(part: str, *, text: str, source: str) -> tuple[int, int]:
    lo_text, sep, hi_text = part.partition("-")
    if not sep:
        raise InputError("not a time range", field=source, value=part or text, valid=WINDOW_HELP)
    lo, hi = _minute(lo_text, source=source), _minute(hi_text, source=source)
    if hi <= lo:
        raise InputError("a session window closes before it opens", field=source, value=part,
                         valid="HH:MM-HH:MM with the close after the open (across midnight: "
                               "22:00-24:00,00:00-02:00)")
    return lo, hi


def _minute(text: str, *, source: str) -> int:
    m = _TIME.fullmatch(text.strip())
    if m is None or int(m.group(2)) > 59 or int(m.group(1)) > 24 or (int(m.group(1)) == 24 and m.group(2) != "00"):
        raise InputError("not a time of day", field=source, value=text,
                         valid="HH:MM from 00:00 to 24:00 (UTC)")
    return int(m.group(1)) * 60 + int(m.group(2))


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


# ------------------------------------------------------------------ the recommended catalogue


@dataclass(frozen=True)
class Change:
    service: str
    container: str
    field: str
    current: int
    recommended: int


@dataclass(frozen=True)
class RecommendedCatalog:
    catalog: Catalog
    text: str
    """The services.yaml (``--write-catalog FILE``)."""
    changes: tuple[Change, ...]
    diff: pd.DataFrame
    """``manifests.diff.diff_catalogs(current, recommended)``: per service and pod figure."""
    unmatched: tuple[str, ...] = ()
    """``workload/container`` of recommendations with no service or container in the catalogue."""


def recommended_catalog(catalog: Catalog, recommendations: Sequence[Recommendation], *, strategy: str,
                        window: str) -> RecommendedCatalog:
    """The catalogue with the recommended figures. A ``?`` figure stays as it is; an unset
    CPU limit (krr's ``simple``) keeps the current limit, raised to the new request when
    below it, because a services file must give limits (catalog.py); a service whose
    figures change gets ``source.resources: "recommended: <strategy>, <window>, <n> samples"``.
    Several recommendations for one container (one per namespace) take the largest figure."""
    for name, value in (("strategy", strategy), ("window", window)):
        if not isinstance(value, str) or not value.strip() or "\n" in value:
            raise InputError(f"no {name} for the recommended figures' source", field=name, value=value,
                             valid="a one-line name, e.g. simple / london,new_york")
    merged: dict[tuple[str, str], dict[str, int]] = {}
    samples: dict[tuple[str, str], int] = {}
    names = {s.name: s for s in catalog.services}
    unmatched = []
    for r in recommendations:
        svc = names.get(r.workload)
        if svc is None or all(c.name != r.container for c in svc.containers):
            unmatched.append(f"{r.workload}/{r.container}")
            continue
        key = (r.workload, r.container)
        figs = merged.setdefault(key, {})
        for f in FIGURES:
            v = getattr(r.recommended, f)
            if v is None or (r.cpu_unknown if f.startswith("cpu") else r.memory_unknown):
                continue
            figs[f] = max(v, figs.get(f, v))
        samples[key] = samples.get(key, 0) + r.samples
    services: list[Service] = []
    changes: list[Change] = []
    for svc in catalog.services:
        containers: list[Container] = []
        used = 0
        for c in svc.containers:
            old = c.resources
            figs = merged.get((svc.name, c.name), {})
            cpu_req = figs.get("cpu_request_m", old.cpu_request_m)
            mem_req = figs.get("memory_request_bytes", old.memory_request_bytes)
            new = Resources(cpu_request_m=cpu_req, memory_request_bytes=mem_req,
                            cpu_limit_m=max(figs.get("cpu_limit_m", old.cpu_limit_m), cpu_req),
                            memory_limit_bytes=max(figs.get("memory_limit_bytes", old.memory_limit_bytes), mem_req))
            diffs = [Change(svc.name, c.name, f.name, getattr(old, f.name), getattr(new, f.name))
                     for f in fields(Resources) if getattr(old, f.name) != getattr(new, f.name)]
            if diffs:
                used += samples.get((svc.name, c.name), 0)
                changes.extend(diffs)
            containers.append(Container(c.name, new))
        if any(ch.service == svc.name for ch in changes):
            sources = dict(svc.sources)
            sources["resources"] = f"recommended: {strategy.strip()}, {window.strip()}, {used} samples"
            svc = replace(svc, containers=tuple(containers), sources=sources)
        services.append(svc)
    new_catalog = Catalog(tuple(services), catalog.source_file)
    text = catalog_text(new_catalog, header=(
        f"# EAFIX service catalogue with right-sized figures ({strategy.strip()}, {window.strip()}),\n"
        f"# from {catalog.source_file or 'the current catalogue'}. A changed figure says so under\n"
        "# source.resources; quantities are quoted Kubernetes quantities.\n"))
    # the text is what users deploy from: it must load back into the same catalogue
    reloaded = catalog_from_dict(_safe_load(text), file="<recommended services.yaml>")
    from ..manifests.diff import diff_catalogs
    return RecommendedCatalog(replace(reloaded, source_file=catalog.source_file), text, tuple(changes),
                              diff_catalogs(catalog, reloaded), tuple(unmatched))


def catalog_document(catalog: Catalog) -> dict[str, Any]:
    """A catalogue as services.yaml's mapping (the inverse of ``catalog_from_dict``)."""
    out = []
    for s in catalog.services:
        entry: dict[str, Any] = {"name": s.name}
        if s.description:
            entry["description"] = s.description
        entry.update({"port": s.port, "tier": s.tier, "kind": s.kind, "replicas": s.replicas,
                      "runtime": s.runtime})
        if s.image:
            entry["image"] = s.image
        if not s.mesh_inject:
            entry["mesh_inject"] = False
        if s.growth_pct is not None:
            entry["growth_pct"] = s.growth_pct
        if s.node_selector:
            entry["node_selector"] = dict(s.node_selector)
        if s.tolerations:
            entry["tolerations"] = [toleration_entry(t) for t in s.tolerations]
        entry["containers"] = [{
            "name": c.name,
            "requests": {"cpu": str(from_milli(c.resources.cpu_request_m)),
                         "memory": str(from_bytes(c.resources.memory_request_bytes))},
            "limits": {"cpu": str(from_milli(c.resources.cpu_limit_m)),
                       "memory": str(from_bytes(c.resources.memory_limit_bytes))},
        } for c in s.containers]
        entry["hpa"] = None if s.hpa is None else {
            "min_replicas": s.hpa.min_replicas, "max_replicas": s.hpa.max_replicas,
            "cpu_utilization": s.hpa.cpu_utilization}
        entry["storage"] = [{"name": v.name, "size": str(from_bytes(v.size_bytes)), "mount_path": v.mount_path,
                             "access_mode": v.access_mode} for v in s.volumes]
        entry["source"] = dict(s.sources)
        out.append(entry)
    return {"services": out}


def toleration_entry(t: Toleration) -> dict[str, str]:
    """A toleration as services.yaml writes it: the pod spec's form without the default
    operator Equal."""
    from ..manifests.render import pod_toleration
    out = pod_toleration(t)
    if out["operator"] == "Equal":
        del out["operator"]
    return out


def catalog_text(catalog: Catalog, *, header: str = "") -> str:
    from ..manifests.layout import dump_yaml
    return header + dump_yaml(catalog_document(catalog))


def _safe_load(text: str) -> Any:
    import yaml
    return yaml.safe_load(text)


# ------------------------------------------------------------------ re-plan


@dataclass(frozen=True)
class Replan:
    """The plan's node count on the current and on the recommended catalogue."""

    current: Plan
    recommended: Plan

    @property
    def current_nodes(self) -> int | None:
        return self.current.recommended_nodes

    @property
    def recommended_nodes(self) -> int | None:
        return self.recommended.recommended_nodes

    def line(self) -> str:
        p = self.current
        where = f"{p.node_type.name} ({p.options.provider}), {p.profile.name} profile"
        return (f"nodes needed: {_count(self.current_nodes)} with the current catalogue, "
                f"{_count(self.recommended_nodes)} with the recommended one ({where})")

    def to_dict(self) -> dict[str, Any]:
        return {"current_nodes": self.current_nodes, "recommended_nodes": self.recommended_nodes,
                "node_type": self.current.node_type.name, "profile": self.current.profile.name,
                "current_passed": self.current.passed, "recommended_passed": self.recommended.passed}


def _count(n: int | None) -> str:
    return "none (does not fit)" if n is None else str(n)


def replan(params: PlanParams, catalog: Catalog) -> Replan:
    """Re-run the plan of ``params`` on ``catalog`` (the recommended one) and on the
    catalogue ``params`` names (the current one)."""
    from ..inputs import plan_from_params
    return Replan(plan_from_params(params), plan_from_params(params, catalog=catalog))


# ------------------------------------------------------------------ rounding shared by strategies


def ceil_m(value: float) -> int:
    """Millicores rounded up to 1m, as krr's ``_round_value`` (ceil(cores x 1000) / 1000). CPU is
    exact to the nanocore in the samples, so float noise below that is dropped first."""
    return math.ceil(round(value, 6))


def ceil_mib(value: float) -> int:
    """Bytes rounded up to 1Mi, as krr's ``_round_value`` (ceil(bytes / 1024**2) x 1024**2)."""
    return math.ceil(value * (1 / MiB)) * MiB


__all__ = [
    "ALL_HOURS", "CRITICAL", "Change", "FIGURES", "Figures", "GOOD", "OK", "Recommendation", "RecommendedCatalog",
    "Replan", "SessionWindow", "UNKNOWN", "WARNING", "as_frame", "as_json", "catalog_document", "catalog_text",
    "default_sessions", "finish", "parse_window", "recommend", "recommended_catalog", "replan", "severity",
    "worst",
]
