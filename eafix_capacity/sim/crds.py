"""CustomResourceDefinitions: turning a stored CRD into served resource types.

What the apiextensions-apiserver does on CRD create/update/delete: register each served
version as a ``ResourceType`` (so discovery and the REST paths appear), keep its
``openAPIV3Schema`` for validation, and report the CRD ``Established``.
"""
from __future__ import annotations

from eafix_capacity.sim.resources import Registry, ResourceType
from eafix_capacity.sim.store import now_rfc3339


def resource_types(crd: dict) -> list[tuple[ResourceType, dict | None]]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group") or ""
    out: list[tuple[ResourceType, dict | None]] = []
    for version in spec.get("versions") or []:
        if not isinstance(version, dict) or not version.get("served", True) or not version.get("name"):
            continue
        subs = tuple(k for k in ("status", "scale") if k in (version.get("subresources") or {}))
        rt = ResourceType(group=group, version=version["name"], plural=names.get("plural", ""),
                          kind=names.get("kind", ""), namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                          subresources=subs, short_names=tuple(names.get("shortNames") or ()),
                          categories=tuple(names.get("categories") or ()),
                          singular=names.get("singular") or names.get("kind", "").lower())
        schema = ((version.get("schema") or {}).get("openAPIV3Schema"))
        out.append((rt, schema if isinstance(schema, dict) else {"type": "object",
                                                                 "x-kubernetes-preserve-unknown-fields": True}))
    return out


def printer_columns(crd: dict, version: str) -> list[dict]:
    for v in (crd.get("spec") or {}).get("versions") or []:
        if isinstance(v, dict) and v.get("name") == version:
            return list(v.get("additionalPrinterColumns") or [])
    return []


def register(registry: Registry, crd: dict) -> list[ResourceType]:
    added = []
    for rt, schema in resource_types(crd):
        if rt.plural and rt.kind:
            registry.add(rt, schema=schema)
            added.append(rt)
    return added


def unregister(registry: Registry, crd: dict) -> list[ResourceType]:
    removed = []
    group = (crd.get("spec") or {}).get("group") or ""
    plural = ((crd.get("spec") or {}).get("names") or {}).get("plural", "")
    for rt in registry.types():
        if rt.group == group and rt.plural == plural and not registry.is_builtin(rt):
            registry.remove(rt)
            removed.append(rt)
    return removed


def established_status(crd: dict) -> dict:
    now = now_rfc3339()
    names = dict((crd.get("spec") or {}).get("names") or {})
    names.setdefault("singular", names.get("kind", "").lower())
    names.setdefault("listKind", f"{names.get('kind', '')}List")
    versions = [v["name"] for v in (crd.get("spec") or {}).get("versions") or []
                if isinstance(v, dict) and v.get("storage")]
    return {"acceptedNames": names, "storedVersions": versions, "conditions": [
        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
         "message": "no conflicts found", "lastTransitionTime": now},
        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
         "message": "the initial names have been accepted", "lastTransitionTime": now}]}
