"""Which ``apiVersion``/``kind`` pairs a manifest set may use, and what to say about the rest.

A misspelt kind (``Deploymnt``) or a kind in a version the cluster no longer serves
(``extensions/v1beta1`` Deployment) is not an object anybody can apply: the API server
answers ``no matches for kind "Deploymnt" in version "apps/v1"``. Read as input for the
plan, such an object silently drops a workload, so the plan passes on part of the
system. Known are the kinds of the Kubernetes version the kit validates against (from the
schemas ``kubernetes-validate`` ships), the kinds the kit carries schemas for (Istio,
External Secrets) and kinds that a CustomResourceDefinition in the same set defines.
"""
from __future__ import annotations

import difflib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import ManifestError
from ..kobject import get_in
from .layout import object_ref
from .load import LoadedObject
from .render import KUBERNETES_VERSION
from .validate import SCHEMA_DIR

IGNORE_FLAG = "--ignore-unknown-kinds"


def _group(api_version: str) -> str:
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


@dataclass(frozen=True)
class KnownKinds:
    """The (apiVersion, kind) pairs a manifest set may use; ``any_version`` holds
    (group, kind) pairs known in every version of their group."""

    pairs: frozenset[tuple[str, str]]
    kubernetes_version: str
    any_version: frozenset[tuple[str, str]] = frozenset()

    def __contains__(self, pair: object) -> bool:
        if pair in self.pairs:
            return True
        if not isinstance(pair, tuple) or len(pair) != 2 or not isinstance(pair[0], str):
            return False
        return (_group(pair[0]), pair[1]) in self.any_version

    def hint(self, api_version: str, kind: str) -> str | None:
        """What to say about a pair that is not known ("did you mean Deployment?",
        "Deployment is served as apps/v1"), or None without a close match."""
        served = sorted(v for v, k in self.pairs if k == kind) \
            + sorted(f"{g}/*" for g, k in self.any_version if k == kind)
        if served:
            return f"{kind} is served as {' or '.join(served)}"
        by_lower: dict[str, str] = {}
        for k in sorted({k for _, k in self.pairs} | {k for _, k in self.any_version}):
            by_lower.setdefault(k.lower(), k)
        close = difflib.get_close_matches(kind.lower(), list(by_lower), n=1, cutoff=0.75)
        return f"did you mean {by_lower[close[0]]}?" if close else None


@dataclass(frozen=True)
class UnknownKind:
    """An object whose apiVersion/kind pair is not known."""

    file: str
    document: int
    line: int
    ref: str
    api_version: str
    kind: str
    hint: str | None

    @property
    def where(self) -> str:
        return f"{self.ref} (document {self.document}, line {self.line})"

    def problem(self) -> str:
        text = f"unknown kind {self.kind!r} in {self.api_version}"
        return text + (f" ({self.hint})" if self.hint else "")


def builtin_kinds(kubernetes_version: str = KUBERNETES_VERSION) -> frozenset[tuple[str, str]]:
    """Every (apiVersion, kind) of the Kubernetes version's OpenAPI definitions."""
    version = kubernetes_version.lstrip("v")
    # found without importing kubernetes_validate (its import costs more than this read)
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise ManifestError("the kubernetes-validate package is not installed", field="kubernetes_version",
                            value=kubernetes_version, valid="pip install kubernetes-validate")
    path = Path(list(spec.submodule_search_locations)[0], "kubernetes-json-schema",
                f"v{version}.0-local-strict", "_definitions.json")
    try:
        defs = json.loads(path.read_text(encoding="utf-8"))["$defs"]
    except FileNotFoundError as e:
        raise ManifestError("Kubernetes version without schemas", field="kubernetes_version",
                            value=kubernetes_version, valid="the version kubernetes-validate ships, "
                            f"e.g. {KUBERNETES_VERSION}") from e
    out = set()
    for definition in defs.values():
        for gvk in definition.get("x-kubernetes-group-version-kind") or []:
            group, ver = gvk["group"], gvk["version"]
            out.add((f"{group}/{ver}" if group else ver, gvk["kind"]))
    return frozenset(out)


def kit_kinds() -> frozenset[tuple[str, str]]:
    """The (group, kind) of every schema the kit carries (Istio, External Secrets), known
    in any version: the kit's schemas are for v1beta1, while the operators serve several
    versions at once (Istio 1.22 promoted its networking and security kinds to v1 and
    still serves v1beta1 and v1alpha3)."""
    out = set()
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        props = json.loads(path.read_text(encoding="utf-8"))["properties"]
        out.add((_group(props["apiVersion"]["const"]), props["kind"]["const"]))
    return frozenset(out)


def crd_kinds(objects: Iterable[dict]) -> frozenset[tuple[str, str]]:
    """The (apiVersion, kind) pairs the CustomResourceDefinitions among ``objects`` define
    (every version they list, served or not: the set is read, not served)."""
    out = set()
    for obj in objects:
        if obj.get("kind") != "CustomResourceDefinition" \
                or not str(obj.get("apiVersion", "")).startswith("apiextensions.k8s.io/"):
            continue
        group, kind = get_in(obj, "spec", "group"), get_in(obj, "spec", "names", "kind")
        versions = get_in(obj, "spec", "versions")
        if not isinstance(group, str) or not isinstance(kind, str) or not isinstance(versions, list):
            continue   # a malformed CRD is the schema check's to report
        for v in versions:
            if isinstance(v, dict) and isinstance(v.get("name"), str):
                out.add((f"{group}/{v['name']}", kind))
    return frozenset(out)


def known_kinds(objects: Iterable[dict] = (), *,
                kubernetes_version: str = KUBERNETES_VERSION) -> KnownKinds:
    """The kinds known for a set of ``objects`` (its own CRDs included)."""
    return KnownKinds(builtin_kinds(kubernetes_version) | crd_kinds(objects),
                      kubernetes_version.lstrip("v"), kit_kinds())


def unknown_kinds(loaded: Iterable[LoadedObject], known: KnownKinds) -> list[UnknownKind]:
    """The objects of ``loaded`` whose apiVersion/kind pair is not in ``known``."""
    out = []
    for lo in loaded:
        api_version, kind = str(lo.obj.get("apiVersion")), str(lo.obj.get("kind"))
        if (api_version, kind) not in known:
            out.append(UnknownKind(lo.file, lo.document, lo.line, object_ref(lo.obj), api_version,
                                   kind, known.hint(api_version, kind)))
    return out


def valid_text(known: KnownKinds) -> str:
    return (f"a kind of Kubernetes {known.kubernetes_version}, an Istio or External Secrets kind the kit "
            f"carries a schema for, or one a CustomResourceDefinition in the set defines; "
            f"{IGNORE_FLAG} skips such objects with a warning")


def unknown_kind_error(unknown: list[UnknownKind], known: KnownKinds) -> ManifestError:
    """One error for the first unknown kind, counting the others."""
    first = unknown[0]
    more = f" (and {len(unknown) - 1} more object(s) of unknown kind)" if len(unknown) > 1 else ""
    return ManifestError(first.problem() + more, file=first.file, obj=first.where, field="kind",
                         valid=valid_text(known))


def skipped_message(u: UnknownKind) -> str:
    return f"{u.file}: {u.where}: skipped, {u.problem()}"
