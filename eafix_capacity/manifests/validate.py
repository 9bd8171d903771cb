"""Offline schema validation of manifest objects.

Built-in kinds are checked against the strict OpenAPI-derived JSON schemas that the
``kubernetes-validate`` package ships (Kubernetes ``KUBERNETES_VERSION``; strict means an
unknown or misspelt field is an error, as ``kubectl apply --validate=strict`` would
report). Istio and External Secrets kinds are checked against the schemas the kit
carries in ``eafix_capacity/schemas/`` for the fields it writes. Quantities get an extra
check with the kit's own parser, since the OpenAPI schema accepts any string there.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import pandas as pd

from ..kobject import walk_leaves
from ..errors import ManifestError, QuantityError
from ..quantity import parse
from .layout import object_ref
from .render import KUBERNETES_VERSION

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
VIOLATION_COLUMNS = ["object", "file", "field", "problem", "severity"]

_QUANTITY_PATHS = (
    re.compile(r"(^|\.)resources\.(requests|limits)\.[^.\[]+$"),
    re.compile(r"^spec\.hard\.[^.\[]+$"),
    re.compile(r"^spec\.limits\[\d+\]\.(default|defaultRequest|max|min)\.[^.\[]+$"),
    re.compile(r"\.emptyDir\.sizeLimit$"),
)


@dataclass(frozen=True)
class Violation:
    object: str
    file: str
    field: str
    problem: str
    severity: str = "error"   # "warning": no schema known for the kind


def _group_file_part(api_version: str) -> str:
    """``apps/v1`` -> ``apps-v1``; ``networking.k8s.io/v1`` -> ``networking-v1``; ``v1`` -> ``v1``."""
    if "/" not in api_version:
        return api_version
    group, version = api_version.split("/", 1)
    return f"{group.split('.')[0]}-{version}"


def _inline(node: Any, defs: dict, memo: dict[str, Any], stack: tuple[str, ...] = ()) -> Any:
    """The schema with its ``$ref``s to the shared definitions replaced by the definitions
    themselves (descriptions dropped): jsonschema validates such a tree about twice as
    fast as one it must resolve reference by reference. A recursive definition keeps a
    local ``#/$defs/`` reference, resolved against the definitions set on the root."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and "#/$defs/" in ref:
            name = ref.split("#/$defs/", 1)[1]
            if name in stack:
                return {"$ref": f"#/$defs/{name}"}
            if name not in memo:
                memo[name] = _inline(defs[name], defs, memo, stack + (name,))
            rest = {k: _inline(v, defs, memo, stack) for k, v in node.items()
                    if k not in ("$ref", "description")}
            return {**rest, "allOf": [memo[name]]} if rest else memo[name]
        return {k: _inline(v, defs, memo, stack) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [_inline(v, defs, memo, stack) for v in node]
    return node


class SchemaSet:
    """Validators for one Kubernetes version, built once per kind on first use."""

    def __init__(self, kubernetes_version: str = KUBERNETES_VERSION) -> None:
        self.version = kubernetes_version.lstrip("v")
        root = resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
        self._dir = root.joinpath(f"v{self.version}.0-local-strict")
        if not self._dir.joinpath("_definitions.json").is_file():
            known = sorted({p.name.split("-")[0][1:].rsplit(".", 1)[0] for p in root.iterdir()
                            if p.name.endswith("-local-strict")}, key=lambda v: tuple(map(int, v.split("."))))
            raise ManifestError("Kubernetes version without schemas", field="kubernetes_version",
                                value=kubernetes_version, valid="one of: " + ", ".join(known))
        self._defs: dict | None = None
        self._memo: dict[str, Any] = {}
        self._validators: dict[tuple[str, str], Any] = {}

    def _definitions(self) -> dict:
        if self._defs is None:
            self._defs = json.loads(self._dir.joinpath("_definitions.json").read_text(encoding="utf-8"))["$defs"]
        return self._defs

    def validator(self, api_version: str, kind: str) -> Any | None:
        key = (api_version, kind)
        if key in self._validators:
            return self._validators[key]
        name = f"{kind.lower()}-{_group_file_part(api_version)}.json"
        group = api_version.split("/")[0] if "/" in api_version else ""
        schema = None
        if "." in group and not group.endswith(".k8s.io"):
            kit = SCHEMA_DIR / name
            if kit.is_file():
                schema = json.loads(kit.read_text(encoding="utf-8"))
        else:
            f = self._dir.joinpath(name)
            if f.is_file():
                defs = self._definitions()
                schema = _inline(json.loads(f.read_text(encoding="utf-8")), defs, self._memo)
                schema["$defs"] = defs
        validator = jsonschema.Draft202012Validator(schema) if schema is not None else None
        # a schema found by file name must be for this very apiVersion (the kit's carry a
        # const, kubernetes-validate's an enum): another group's kind of the same name
        # (a foreign ``Gateway``) has no schema here rather than the wrong one
        declared = (schema or {}).get("properties", {}).get("apiVersion", {})
        versions = declared.get("enum") or ([declared["const"]] if "const" in declared else None)
        if validator is not None and versions and api_version not in versions:
            validator = None
        self._validators[key] = validator
        return validator


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def quantity_violations(obj: dict, *, file: str = "") -> list[Violation]:
    out = []
    for path, value in walk_leaves(obj, ""):
        if any(p.search(path) for p in _QUANTITY_PATHS):
            try:
                if isinstance(value, bool) or value is None:
                    raise QuantityError("not a quantity", value=value)
                parse(value)
            except QuantityError:
                out.append(Violation(object_ref(obj), file, path,
                                     f"invalid quantity {value!r}: Kubernetes would reject it "
                                     "(use e.g. 250m, 0.5, 512Mi, 1Gi)"))
    return out


def validate_object(obj: dict, schemas: SchemaSet, *, file: str = "") -> list[Violation]:
    ref = object_ref(obj)
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return [Violation(ref, file, "apiVersion" if not isinstance(api_version, str) else "kind",
                          "missing apiVersion or kind")]
    validator = schemas.validator(api_version, kind)
    if validator is None:
        return [Violation(ref, file, "apiVersion",
                          f"no schema for {kind} {api_version} in Kubernetes {schemas.version} "
                          "or the kit's schemas; not validated", "warning")]
    out = []
    for e in sorted(validator.iter_errors(obj), key=lambda e: _path(e.absolute_path)):
        message = e.message if len(e.message) <= 240 else e.message[:237] + "..."
        out.append(Violation(ref, file, _path(e.absolute_path) or "(object)", message))
    return out + quantity_violations(obj, file=file)


def validate_objects(objects: list[dict], *, kubernetes_version: str = KUBERNETES_VERSION,
                     files: list[str] | None = None, schemas: SchemaSet | None = None) -> list[Violation]:
    """Every schema violation of every object (warnings for kinds without a schema).
    Pass ``schemas`` to reuse validators across calls (e.g. rendering several profiles)."""
    schemas = schemas or SchemaSet(kubernetes_version)
    out: list[Violation] = []
    for i, obj in enumerate(objects):
        out += validate_object(obj, schemas, file=files[i] if files else "")
    return out


def violations_frame(violations: list[Violation]) -> pd.DataFrame:
    return pd.DataFrame([v.__dict__ for v in violations], columns=VIOLATION_COLUMNS)


def assert_valid(objects: list[dict], *, kubernetes_version: str = KUBERNETES_VERSION,
                 files: list[str] | None = None, schemas: SchemaSet | None = None) -> None:
    """Raise ManifestError naming the object and field path of the first schema error."""
    if schemas is not None:
        kubernetes_version = schemas.version
    errors = [v for v in validate_objects(objects, kubernetes_version=kubernetes_version, files=files,
                                          schemas=schemas)
              if v.severity == "error"]
    if errors:
        v = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ManifestError(f"schema violation against Kubernetes {kubernetes_version}: {v.problem}{more}",
                            file=v.file or None, obj=v.object, field=v.field)
