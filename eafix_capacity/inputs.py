"""Plan parameters as users give them (flags, notebook parameters, YAML files).

``PlanParams`` is the one place where loose user input becomes checked values:
the CLI, the report command and the notebooks' validation cell all go through it, so a
bad value gets the same message wherever it comes from.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from .catalog import Catalog, load_catalog
from .errors import InputError
from .mesh import MESHES
from .nodes import DEFAULT_NODE_TYPES_PATH, PROVIDERS, get_node_type, load_node_types
from .paths import data_file
from .plan import (DEFAULT_CPU_LIMIT_RATIO, DEFAULT_HEADROOM_PCT, DEFAULT_MEMORY_LIMIT_RATIO,
                   Plan, PlanOptions, make_plan)
from .profiles import get_profile, load_profiles
from .yamlio import load_yaml_file


@dataclass(frozen=True)
class PlanParams:
    profile: str = "recommended"
    provider: str = "gke"
    node_type: str = "n2-standard-8"
    nodes: int | None = None
    mesh: str = "none"
    headroom_pct: float = DEFAULT_HEADROOM_PCT
    cpu_limit_ratio: float = DEFAULT_CPU_LIMIT_RATIO
    memory_limit_ratio: float = DEFAULT_MEMORY_LIMIT_RATIO
    storage_gib: float | None = None
    max_pods: int | None = None
    catalog: str | None = None
    manifests: str | None = None
    replicas: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_type("profile", self.profile, str)
        _check_type("node_type", self.node_type, str)
        if self.provider not in PROVIDERS:
            raise InputError("unknown provider", field="provider", value=self.provider,
                             valid="one of: " + ", ".join(PROVIDERS))
        if (self.mesh or "none") not in MESHES:
            raise InputError("unknown mesh", field="mesh", value=self.mesh,
                             valid="one of: " + ", ".join(MESHES))
        for name in ("nodes", "max_pods"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise InputError("not a whole number of at least 1", field=name, value=v,
                                 valid="an integer >= 1, or null for the default")
        for name in ("headroom_pct", "cpu_limit_ratio", "memory_limit_ratio", "storage_gib"):
            v = getattr(self, name)
            if v is None and name == "storage_gib":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise InputError("not a number", field=name, value=v)
            if name == "storage_gib" and v < 0:
                raise InputError("negative storage", field=name, value=v,
                                 valid="GiB of persistent storage provisioned, 0 or more")
        if self.catalog and self.manifests:
            raise InputError("give either a catalogue file or a manifests directory, not both",
                             field="manifests", value=self.manifests)
        if not isinstance(self.replicas, Mapping):
            raise InputError("not a mapping of service to replicas", field="replicas", value=self.replicas)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, source: str = "parameters") -> PlanParams:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InputError("unknown parameter", file=source, field=unknown[0], value=unknown[0],
                             valid="known parameters: " + ", ".join(sorted(known)))
        values = dict(raw)
        if values.get("mesh") in (None, ""):
            values["mesh"] = "none"
        return cls(**values)

    @classmethod
    def from_notebook(cls, **values: Any) -> PlanParams:
        """From a notebook's parameters cell, where 0 and "" mean "not given" and
        ``replicas`` is text such as ``"reporter:2,gui-gateway:3"``."""
        for name in ("nodes", "storage_gib", "max_pods"):
            if values.get(name) in (0, 0.0):
                values[name] = None
        for name in ("catalog", "manifests"):
            if values.get(name) == "":
                values[name] = None
        if isinstance(values.get("replicas"), str):
            values["replicas"] = parse_replicas_text(values["replicas"], source="notebook parameters")
        return cls.from_mapping(values, source="notebook parameters")

    @classmethod
    def from_yaml(cls, path: str | Path) -> PlanParams:
        doc = load_yaml_file(path)
        if doc is None:
            doc = {}
        if not isinstance(doc, dict):
            raise InputError("expected a mapping of parameter names to values", file=str(path))
        return cls.from_mapping(doc, source=str(path))

    def notebook_parameters(self) -> dict[str, Any]:
        """The parameters as papermill passes them (nodes 0 = let the plan choose)."""
        return {
            "profile": self.profile, "provider": self.provider, "node_type": self.node_type,
            "nodes": self.nodes or 0, "mesh": self.mesh, "headroom_pct": float(self.headroom_pct),
            "cpu_limit_ratio": float(self.cpu_limit_ratio),
            "memory_limit_ratio": float(self.memory_limit_ratio),
            "storage_gib": float(self.storage_gib) if self.storage_gib is not None else 0.0,
            "max_pods": self.max_pods or 0,
            "replicas": ",".join(f"{name}:{n}" for name, n in self.replicas.items()),
            "catalog": self.catalog or "", "manifests": self.manifests or "",
        }


def parse_replicas_text(text: str, *, source: str = "parameters") -> dict[str, int]:
    """Replica overrides written as one string, ``"reporter:2,gui-gateway:3"`` ("" for
    none): the form a notebook parameter can carry."""
    out: dict[str, int] = {}
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        name, sep, n = item.partition(":")
        name, n = name.strip(), n.strip()
        if not sep or not name or not n.lstrip("-").isdigit():
            raise InputError("invalid replica override", file=source, field="replicas", value=item,
                             valid="comma-separated SERVICE:N pairs, e.g. reporter:2,gui-gateway:3")
        out[name] = int(n)
    return out


def _check_type(name: str, value: Any, typ: type) -> None:
    if not isinstance(value, typ) or not value:
        raise InputError(f"not a {typ.__name__}", field=name, value=value)


def load_inputs_catalog(params: PlanParams) -> Catalog:
    if params.manifests:
        from .manifests.importer import import_catalog
        catalog = import_catalog(params.manifests)
    else:
        catalog = load_catalog(params.catalog)
    return catalog.with_replicas(params.replicas) if params.replicas else catalog


def plan_from_params(params: PlanParams) -> Plan:
    """Load the embedded (or given) data and make the plan."""
    catalog = load_inputs_catalog(params)
    profile = get_profile(params.profile, load_profiles(), file=str(data_file("profiles.yaml")))
    node_type = get_node_type(params.node_type, load_node_types(), file=str(DEFAULT_NODE_TYPES_PATH))
    storage = None if params.storage_gib is None else int(params.storage_gib * 2**30)
    options = PlanOptions(
        provider=params.provider, nodes=params.nodes, mesh=params.mesh or "none",
        headroom_pct=float(params.headroom_pct), cpu_limit_ratio=float(params.cpu_limit_ratio),
        memory_limit_ratio=float(params.memory_limit_ratio), storage_bytes=storage,
        max_pods=params.max_pods,
    )
    return make_plan(catalog, profile, node_type, options)


def check_scenario(scenario: str) -> str:
    from .scenarios import SCENARIOS
    if scenario not in SCENARIOS:
        raise InputError("unknown scenario", field="scenario", value=scenario,
                         valid="one of: " + ", ".join(SCENARIOS))
    return scenario
