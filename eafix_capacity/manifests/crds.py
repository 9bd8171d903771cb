"""Stand-in CustomResourceDefinitions for the non-core kinds the rendering writes.

On a real cluster, Istio (``istioctl install``) and the External Secrets Operator install
their own CRDs. A cluster without them, such as the sim cluster, rejects the ``istio/``
objects with "no matches for kind". These stand-ins register the same group, version,
kind and plural so the rendering can be applied in the seed's order; their schemas keep
unknown fields (the kit's own schemas in ``eafix_capacity/schemas/`` are what validates
the fields it writes, offline). They are for trying the rendering, not for production.
"""
from __future__ import annotations

import json

from .validate import SCHEMA_DIR


def _plural(kind: str) -> str:
    lower = kind.lower()
    if lower.endswith("y") and lower[-2:-1] not in "aeiou":
        return lower[:-1] + "ies"
    return lower + "s"


def stand_in_crds(*, groups: tuple[str, ...] | None = None) -> list[dict]:
    """One CRD per schema the kit carries (optionally only for some API groups)."""
    crds = []
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        schema = json.loads(path.read_text())
        api_version = schema["properties"]["apiVersion"]["const"]
        kind = schema["properties"]["kind"]["const"]
        group, version = api_version.split("/")
        if groups is not None and group not in groups:
            continue
        plural = _plural(kind)
        crds.append({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}",
                         "labels": {"app.kubernetes.io/managed-by": "eafix-capacity",
                                    "eafix.io/stand-in": "true"}},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"kind": kind, "plural": plural, "singular": kind.lower(),
                          "listKind": f"{kind}List"},
                "versions": [{
                    "name": version, "served": True, "storage": True,
                    "schema": {"openAPIV3Schema": {
                        "type": "object",
                        "properties": {"spec": {"type": "object",
                                                "x-kubernetes-preserve-unknown-fields": True},
                                       "status": {"type": "object",
                                                  "x-kubernetes-preserve-unknown-fields": True}},
                    }},
                }],
            },
        })
    return crds
