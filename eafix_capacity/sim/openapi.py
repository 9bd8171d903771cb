"""The OpenAPI v3 documents kubectl reads before it writes (``/openapi/v3``).

kubectl 1.32 downloads ``/openapi/v3`` and the group-version document of each kind it
sends, to find out whether the PATCH operation of that kind accepts the
``fieldValidation`` query parameter (then it leaves validation to the server, which the sim
does) and whether it accepts strategic merge patch (then it computes patches from the
published schema). The sim publishes the paths and parameters but does not advertise
strategic merge patch in the document, so ``kubectl apply`` computes patches from its
compiled-in types for built-in kinds and uses JSON merge patch for custom resources.
``components.schemas`` carry the kinds' schemas (from the same JSON schemas the server
validates with, and CRD ``openAPIV3Schema``s) for ``kubectl explain``.

``/openapi/v2`` is served as an empty Swagger 2.0 document in protobuf, the only form
client-go reads. kubectl falls back to it when a kind's group-version is missing from
``/openapi/v3`` (a custom resource whose CRD is not installed); finding no definition there
it skips client-side validation, and then reports what a real cluster reports: ``no
matches for kind ... ensure CRDs are installed first``.
"""
from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from eafix_capacity.sim.resources import Registry, ResourceType
from eafix_capacity.sim.schemas import builtin_definition_name, definitions

_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

_PATCH_MEDIA = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")
_QUERY = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")


def _protobuf_field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (payloads here are far below 128 bytes)."""
    return bytes([number << 3 | 2, len(payload)]) + payload


V2_PROTOBUF_MEDIA = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
# gnostic openapi_v2.Document: swagger = 1, info = 2 (Info: title = 1, version = 2)
V2_PROTOBUF = _protobuf_field(1, b"2.0") + _protobuf_field(
    2, _protobuf_field(1, b"eafix-capacity sim cluster") + _protobuf_field(2, b"v1.32.0"))


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
            "paths": paths, "components": {"schemas": _schemas(registry, types)}}


def _convert(schema: Any) -> Any:
    """JSON-schema flavour of the validation schemas -> the OpenAPI v3 flavour kubectl reads."""
    if isinstance(schema, list):
        return [_convert(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict = {}
    for key, value in schema.items():
        if key == "$ref" and isinstance(value, str):
            out[key] = "#/components/schemas/" + value.rsplit("/", 1)[-1]
        elif key == "type" and isinstance(value, list):
            kinds = [t for t in value if t != "null"]
            out[key] = kinds[0] if len(kinds) == 1 else kinds
        elif key == "additionalProperties" and value is False:
            continue
        elif key == "x-kubernetes-group-version-kind" and isinstance(value, dict):
            out[key] = [value]
        else:
            out[key] = _convert(value)
    return out


def _refs(schema: Any, found: set[str]) -> None:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            found.add(ref.rsplit("/", 1)[-1])
        for value in schema.values():
            _refs(value, found)
    elif isinstance(schema, list):
        for value in schema:
            _refs(value, found)


@functools.lru_cache(maxsize=64)
def _builtin_closure(names: frozenset[str]) -> dict:
    defs = definitions()
    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        found: set[str] = set()
        _refs(defs[name], found)
        todo.extend(found - seen)
    return {name: _convert(defs[name]) for name in sorted(seen)}


def _schemas(registry: Registry, types: list[ResourceType]) -> dict:
    names = {n for rt in types if registry.crd_schema(rt) is None
             for n in [builtin_definition_name(rt.api_version, rt.kind)] if n}
    crd_types = [rt for rt in types if registry.crd_schema(rt) is not None]
    if crd_types:
        names.add(_OBJECT_META)
    schemas = dict(_builtin_closure(frozenset(names)))
    for rt in crd_types:
        schema = json.loads(json.dumps(registry.crd_schema(rt) or {}))
        props = schema.setdefault("properties", {})
        props["metadata"] = {"$ref": f"#/components/schemas/{_OBJECT_META}"}
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        schema["x-kubernetes-group-version-kind"] = [{"group": rt.group, "version": rt.version, "kind": rt.kind}]
        schemas[f"{_reverse_domain(rt.group)}.{rt.version}.{rt.kind}"] = schema
    return schemas


def _reverse_domain(group: str) -> str:
    return ".".join(reversed(group.split(".")))
