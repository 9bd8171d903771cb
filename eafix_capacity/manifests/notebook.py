"""What notebook 02 (generate manifests) runs: parameters, the job, the summary.

The notebook is a parameters cell plus calls into this module and displays of what it
returns; papermill runs and the CLI therefore compute the same figures.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..catalog import Catalog, load_catalog
from ..errors import InputError
from ..mesh import Mesh, parse_mesh
from ..profiles import get_profile, load_profiles
from .checks import CheckReport, run_checks
from .importer import import_summary
from .layout import write_tree
from .render import DEFAULT_IMAGE_TAG, DEFAULT_NAMESPACE, KUBERNETES_VERSION, RenderOptions, check_options
from .validate import validate_objects, violations_frame
from .diff import diff_catalogs
from .workflow import Generated, build, committed_dir, drift, import_generated, inventory


@dataclass(frozen=True)
class NotebookParams:
    profile: str = "recommended"
    mesh: Mesh = "none"
    output_dir: str = "."
    out_dir: str = ""
    image_registry: str = ""
    image_tag: str = DEFAULT_IMAGE_TAG
    namespace: str = DEFAULT_NAMESPACE
    zone_spread: bool = False
    pools: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "mesh", parse_mesh(self.mesh))

    @classmethod
    def from_notebook(cls, **values: object) -> NotebookParams:
        """Validate the notebook's parameters; a bad one raises InputError naming it."""
        for name, value in values.items():
            if name not in cls.__dataclass_fields__:
                raise InputError("unknown parameter", field=name,
                                 valid="one of: " + ", ".join(cls.__dataclass_fields__))
            if cls.__dataclass_fields__[name].type == "bool":
                if not isinstance(value, bool):
                    raise InputError("not a boolean", field=name, value=value, valid="True or False")
            elif not isinstance(value, str):
                raise InputError("not a string", field=name, value=value)
        params = cls(**values)  # type: ignore[arg-type]
        get_profile(params.profile, load_profiles())
        check_options(params.options())
        params.catalog()
        if not params.output_dir:
            raise InputError("empty output directory", field="output_dir", valid="a directory, e.g. .")
        return params

    def catalog(self) -> Catalog:
        """The catalogue rendered: the embedded one, its services placed in ``pools``' pools."""
        catalog = load_catalog()
        if not self.pools:
            return catalog
        from ..pools import load_pools, place_services
        return place_services(catalog, load_pools(self.pools), file=self.pools)

    def options(self) -> RenderOptions:
        return RenderOptions(namespace=self.namespace, mesh=self.mesh,
                             image_registry=self.image_registry or None, image_tag=self.image_tag,
                             zone_spread=self.zone_spread)

    def rendering_dir(self) -> Path:
        """``out_dir``, or ``<output_dir>/rendered-manifests/<profile>[-istio]``: never the
        committed ``manifests/`` tree unless asked for explicitly."""
        if self.out_dir:
            return Path(self.out_dir)
        return Path(self.output_dir) / "rendered-manifests" / committed_dir(self.profile, self.mesh).name


@dataclass(frozen=True)
class NotebookResult:
    params: NotebookParams
    generated: Generated
    inventory: pd.DataFrame
    validation: pd.DataFrame
    checks: CheckReport
    drift: pd.DataFrame
    catalogue_diff: pd.DataFrame
    sizing: dict

    def kinds(self) -> pd.DataFrame:
        """Objects per file and kind."""
        return (self.inventory.groupby(["file", "kind"]).size().rename("objects").reset_index())

    def scheduling_rules(self) -> pd.DataFrame:
        """Per workload, what decides where its pods run: the topology keys it spreads over,
        its nodeSelector and its tolerations (the zone spread and the pools, when used)."""
        rows = []
        for o in self.generated.objects:
            if o.get("kind") not in ("Deployment", "StatefulSet"):
                continue
            spec = o["spec"]["template"]["spec"]
            rows.append({
                "workload": o["metadata"]["name"], "kind": o["kind"],
                "spread over": ", ".join(c["topologyKey"] for c in spec.get("topologySpreadConstraints") or []),
                "nodeSelector": ", ".join(f"{k}={v}" for k, v in (spec.get("nodeSelector") or {}).items()),
                "tolerations": ", ".join(f"{t.get('key', '')}={t.get('value', '')}:{t.get('effect', '')}"
                                         for t in spec.get("tolerations") or [])})
        return pd.DataFrame(rows, columns=["workload", "kind", "spread over", "nodeSelector", "tolerations"])

    def checks_by_kind(self) -> pd.DataFrame:
        """Pass/fail/warn counts per check."""
        t = self.checks.table
        frame = pd.crosstab(t["check"], t["status"])
        for col in ("pass", "fail", "warn"):
            if col not in frame:
                frame[col] = 0
        return frame[["pass", "fail", "warn"]]

    def summary(self) -> dict:
        quota = next(o for o in self.generated.objects if o["kind"] == "ResourceQuota")
        return {
            "profile": self.params.profile, "mesh": self.params.mesh,
            "namespace": self.params.namespace, "image_registry": self.params.image_registry,
            "image_tag": self.params.image_tag, "zone_spread": self.params.zone_spread,
            "pools": self.params.pools,
            "kubernetes_version": KUBERNETES_VERSION,
            "objects": len(self.generated.objects), "files": len(self.generated.files),
            "kinds": dict(sorted(Counter(o["kind"] for o in self.generated.objects).items())),
            "validation_errors": int((self.validation["severity"] == "error").sum()),
            "checks": self.checks.summary(), "passed": self.checks.passed,
            "matches_committed": self.drift.empty,
            "drift": self.drift.to_dict(orient="records"),
            "catalogue_matches": self.catalogue_diff.empty,
            "catalogue_diff_rows": len(self.catalogue_diff),
            "totals": self.sizing["totals"],
            "quota": dict(quota["spec"]["hard"]),
        }


def run(params: NotebookParams) -> NotebookResult:
    """Render, validate, check, write the tree and compare it with the committed one."""
    catalog = params.catalog()
    profile = get_profile(params.profile, load_profiles())
    gen = build(catalog, profile, params.options())
    write_tree(gen.files, out_dir=params.rendering_dir())
    violations = validate_objects(gen.objects)
    imported = import_generated(gen)   # the sizing as the manifests carry it, not the catalogue's
    return NotebookResult(
        params=params, generated=gen, inventory=inventory(gen.objects),
        validation=violations_frame(violations), checks=run_checks(gen.objects, validate=False),
        drift=drift(gen, committed_dir(params.profile, params.mesh)),
        catalogue_diff=diff_catalogs(imported, catalog), sizing=import_summary(imported),
    )
