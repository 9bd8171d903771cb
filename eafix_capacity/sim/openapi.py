"""The OpenAPI v3 documents kubectl reads before it writes (``/openapi/v3``).

kubectl 1.32 downloads ``/openapi/v3`` and the group-version document of each kind it
sends, to find out whether the PATCH operation of that kind accepts the
``fieldValidation`` query parameter (then it leaves validation to the server, which the sim
does) and whether it accepts strategic merge patch (then it computes patches from the
published schema). The sim publishes the paths and parameters but does not advertise
strategic merge patch in the document, so ``kubectl apply`` computes patches from its
compiled-in types for built-in kinds and uses JSON merge patch for custom resources,
exactly as it does against a server without schemas. ``kubectl explain`` therefore has no
schemas to show. ``/openapi/v2`` is not served (404), which kubectl tolerates.
"""
from __future__ import annotations

import hashlib
import json

from eafix_capacity.sim.resources import Registry, ResourceType

_PATCH_MEDIA = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")
_QUERY = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def root(registry: Registry) -> dict:
    paths = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            doc = group_version(registry, group, version)
            digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()
            key = _gv_path(group, version)
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}


def _operation(rt: ResourceType, action: str, *, body: bool) -> dict:
    op: dict = {"operationId": f"{action}{rt.kind}", "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
                "parameters": [{"name": p, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                               for p in _QUERY],
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {
                    "type": "object"}}}}}}
    if body:
        media = _PATCH_MEDIA if action == "patch" else ("application/json", "application/yaml")
        op["requestBody"] = {"content": {m: {"schema": {"type": "object"}} for m in media}, "required": True}
    return op


def group_version(registry: Registry, group: str, version: str) -> dict | None:
    types = [rt for rt in registry.types() if rt.group == group and rt.version == version]
    if not types:
        return None
    prefix = "/" + _gv_path(group, version)
    paths: dict = {}
    for rt in types:
        if "patch" not in rt.verbs:
            continue
        scope = f"{prefix}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{prefix}/{rt.plural}"
        paths[scope] = {"post": _operation(rt, "post", body=True), "get": _operation(rt, "list", body=False)}
        paths[f"{scope}/{{name}}"] = {"get": _operation(rt, "get", body=False),
                                      "put": _operation(rt, "put", body=True),
                                      "patch": _operation(rt, "patch", body=True),
                                      "delete": _operation(rt, "delete", body=False)}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes (eafix sim)", "version": "v1.32.0"},
            "paths": paths, "components": {"schemas": {}}}
