"""Server-side validation of objects: field validation (unknown fields), types and semantics.

Mirrors the three stages of a real API server's write path:
1. decoding: unknown fields are dropped, or rejected with ``fieldValidation=Strict``
   (400 ``strict decoding error: unknown field "spec.foo"``), or reported as warnings with
   ``Warn``; a value of the wrong JSON type is a 400 ``cannot unmarshal`` error;
2. schema checks (required fields, enums) against the Kubernetes schemas, a 422 Invalid with
   ``details.causes`` field paths;
3. a few semantic checks a real server does for every object (name syntax, label syntax,
   workload selectors matching their templates).
CRD kinds are checked against their ``openAPIV3Schema`` the same way.
"""
from __future__ import annotations

import base64
import binascii
import copy
import functools
import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from eafix_capacity.sim.apierror import ApiError, invalid
from eafix_capacity.sim.resources import Registry, ResourceType
from eafix_capacity.sim.schemas import Node, builtin_definition_name, builtin_node, crd_node, definitions

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_NAMED = frozenset({"Namespace", "Service"})
_WORKLOADS = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"})
_TYPE_NAMES = {"string": "string", "integer": "int64", "number": "float64", "boolean": "bool",
               "object": "map[string]interface {}", "array": "[]interface {}"}


@dataclass
class Outcome:
    obj: dict
    warnings: list[str] = field(default_factory=list)


def _node_for(rt: ResourceType, registry: Registry) -> tuple[Node | None, bool]:
    """(schema node, is CRD) for a type; None when the type has no schema to check against."""
    crd = registry.crd_schema(rt)
    if crd is not None:
        return crd_node(crd), True
    return builtin_node(rt.api_version, rt.kind), False


def validate(obj: dict, rt: ResourceType, registry: Registry, *, mode: str = "Strict",
             partial: bool = False) -> Outcome:
    """Check ``obj``; returns it with unknown fields pruned, or raises ApiError 400/422.

    ``partial`` (a server-side apply configuration) checks field names and types only: required
    fields and semantic rules apply to the merged object, not to what one manager sends.
    """
    mode = mode or "Strict"
    if mode not in ("Strict", "Warn", "Ignore"):
        raise ApiError(400, "BadRequest", f'fieldValidation must be one of "Ignore", "Warn", "Strict", got "{mode}"')
    node, is_crd = _node_for(rt, registry)
    obj = copy.deepcopy(obj)
    unknown: list[str] = []
    if node is not None and node.known:
        _prune(obj, node, "", unknown, is_crd=is_crd)
        if unknown and mode == "Strict":
            text = ", ".join(f'unknown field "{u}"' for u in unknown)
            raise ApiError(400, "BadRequest", f"strict decoding error: {text}")
        _type_and_schema_checks(obj, rt, node, is_crd, partial=partial)
    if not partial:
        _semantic_checks(obj, rt)
    warnings = [f'unknown field "{u}"' for u in unknown] if mode == "Warn" else []
    return Outcome(obj, warnings)


def _prune(value: Any, node: Node, path: str, unknown: list[str], *, is_crd: bool) -> None:
    schema = node.resolved
    if not schema or schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        if schema.get("x-kubernetes-embedded-resource"):
            return
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props is None and extra is None:
            return
        for key in list(value):
            if props and key in props:
                _prune(value[key], node.child(key), f"{path}.{key}" if path else key, unknown, is_crd=is_crd)
            elif isinstance(extra, dict):
                _prune(value[key], node.child(key), f"{path}.{key}" if path else key, unknown, is_crd=is_crd)
            elif extra is True or (is_crd and props is None):
                continue
            elif path == "" and key in ("apiVersion", "kind", "metadata") and is_crd:
                continue
            else:
                unknown.append(f"{path}.{key}" if path else key)
                del value[key]
    elif isinstance(value, list):
        items = node.items()
        for i, element in enumerate(value):
            _prune(element, items, f"{path}[{i}]", unknown, is_crd=is_crd)


_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_INT_FORMATS = jsonschema.FormatChecker(formats=())
for _format, (_low, _high) in _INT_RANGES.items():
    # Go decodes these fields into int32/int64: a larger number is a decoding error there, and here
    # it would otherwise reach the controllers (2**40 replicas).
    _INT_FORMATS.checks(_format)(lambda value, low=_low, high=_high: not isinstance(value, int)
                                 or isinstance(value, bool) or low <= value <= high)


@functools.lru_cache(maxsize=256)
def _builtin_validator(def_name: str) -> jsonschema.protocols.Validator:
    schema = {"$ref": f"#/$defs/{def_name}", "$defs": definitions()}
    return jsonschema.Draft7Validator(schema, format_checker=_INT_FORMATS)


def _crd_to_jsonschema(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_crd_to_jsonschema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _crd_to_jsonschema(v) for k, v in schema.items()
           if k not in ("x-kubernetes-validations", "format")}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if schema.get("x-kubernetes-preserve-unknown-fields") or out.get("properties") is None:
        out.pop("additionalProperties", None) if out.get("additionalProperties") is False else None
    return out


def _type_and_schema_checks(obj: dict, rt: ResourceType, node: Node, is_crd: bool, *, partial: bool = False) -> None:
    if is_crd:
        schema = _crd_to_jsonschema(node.schema)
        body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
        validator = jsonschema.Draft7Validator({**schema, "properties": {
            k: v for k, v in (schema.get("properties") or {}).items() if k not in ("apiVersion", "kind", "metadata")}})
        errors = list(validator.iter_errors(body))
    else:
        def_name = builtin_definition_name(rt.api_version, rt.kind)
        if def_name is None:
            return
        check = {k: v for k, v in obj.items() if k != "status"}
        errors = list(_builtin_validator(def_name).iter_errors(check))
    if partial:
        errors = [e for e in errors if e.validator != "required"]
    if not errors:
        return
    name = (obj.get("metadata") or {}).get("name", "")
    range_errors = [e for e in errors if e.validator == "format" and e.validator_value in _INT_RANGES]
    if range_errors:
        e = min(range_errors, key=lambda e: len(e.absolute_path))
        raise ApiError(400, "BadRequest",
                       f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: json: cannot '
                       f"unmarshal number {e.instance} into Go struct field {_field_path(e.absolute_path)} of type "
                       f"{e.validator_value}")
    type_errors = [e for e in errors if e.validator in ("type", "oneOf", "anyOf")]
    if type_errors:
        e = min(type_errors, key=lambda e: len(e.absolute_path))
        where = _field_path(e.absolute_path)
        got = type(e.instance).__name__
        got = {"str": "string", "int": "number", "float": "number", "bool": "bool", "dict": "object",
               "list": "array", "NoneType": "null"}.get(got, got)
        expected = e.schema.get("type") if isinstance(e.schema, dict) else None
        if isinstance(expected, list):
            expected = next((t for t in expected if t != "null"), None)
        raise ApiError(400, "BadRequest",
                       f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: json: cannot '
                       f"unmarshal {got} into Go struct field {where} of type "
                       f"{_TYPE_NAMES.get(str(expected), 'string or int')}")
    causes = []
    for e in errors:
        where = _field_path(e.absolute_path)
        if e.validator == "required":
            missing = re.findall(r"'([^']+)' is a required property", e.message)
            sub = f"{where}.{missing[0]}" if where and missing else (missing[0] if missing else where)
            causes.append({"reason": "FieldValueRequired", "message": "Required value", "field": sub})
        elif e.validator == "enum":
            allowed = ", ".join(f'"{v}"' for v in e.validator_value if v is not None)
            causes.append({"reason": "FieldValueNotSupported",
                           "message": f'Unsupported value: "{e.instance}": supported values: {allowed}',
                           "field": where})
        else:
            causes.append({"reason": "FieldValueInvalid", "message": f"Invalid value: {e.message}", "field": where})
    raise invalid(rt.kind, rt.group, name, causes)


def _field_path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _semantic_checks(obj: dict, rt: ResourceType) -> None:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    causes: list[dict] = []
    if name:
        pattern, limit, what = ((_DNS_LABEL, 63, "RFC 1123 label") if rt.kind in _LABEL_NAMED
                                else (_DNS_SUBDOMAIN, 253, "RFC 1123 subdomain"))
        if not pattern.match(name) or len(name) > limit:
            causes.append({"reason": "FieldValueInvalid", "field": "metadata.name",
                           "message": f'Invalid value: "{name}": a lowercase {what} must consist of lower case '
                                      "alphanumeric characters, '-' or '.', and must start and end with an "
                                      "alphanumeric character"})
    for key, value in (meta.get("labels") or {}).items():
        if not _label_key_ok(str(key)):
            causes.append({"reason": "FieldValueInvalid", "field": "metadata.labels",
                           "message": f'Invalid value: "{key}": name part must consist of alphanumeric characters, '
                                      "'-', '_' or '.', and must start and end with an alphanumeric character"})
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append({"reason": "FieldValueInvalid", "field": "metadata.labels",
                           "message": f'Invalid value: "{value}": a valid label must be an empty string or consist '
                                      "of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                                      "alphanumeric character"})
    spec = _mapping_at(obj, "spec")
    if rt.kind == "Secret" and rt.group == "":
        _check_base64(obj, rt)
    if rt.kind in _WORKLOADS and rt.group == "apps":
        causes += _workload_checks(spec)
    if rt.kind == "Pod" and rt.group == "":
        if not (spec.get("containers") or []):
            causes.append({"reason": "FieldValueRequired", "field": "spec.containers", "message": "Required value"})
        causes += _pod_spec_checks(spec, "spec")
    if rt.kind in _WORKLOADS and rt.group == "apps":
        tmpl = _mapping_at(spec, "template")
        if isinstance(tmpl.get("spec"), dict):
            causes += _pod_spec_checks(tmpl["spec"], "spec.template.spec")
    if causes:
        raise invalid(rt.kind, rt.group, name, causes)


def _pod_spec_checks(spec: dict, where: str) -> list[dict]:
    causes: list[dict] = []
    seen: set[str] = set()
    for key in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(key) or []):
            if not isinstance(c, dict):
                continue
            path = f"{where}.{key}[{i}]"
            name = c.get("name")
            if not name:
                causes.append({"reason": "FieldValueRequired", "field": f"{path}.name", "message": "Required value"})
            elif not _DNS_LABEL.match(str(name)) or len(str(name)) > 63:
                causes.append({"reason": "FieldValueInvalid", "field": f"{path}.name",
                               "message": f'Invalid value: "{name}": a lowercase RFC 1123 label must consist of '
                                          "lower case alphanumeric characters or '-', and must start and end with "
                                          "an alphanumeric character"})
            elif name in seen:
                causes.append({"reason": "FieldValueDuplicate", "field": f"{path}.name",
                               "message": f'Duplicate value: "{name}"'})
            seen.add(str(name))
            if not c.get("image"):
                causes.append({"reason": "FieldValueRequired", "field": f"{path}.image", "message": "Required value"})
            for j, p in enumerate(c.get("ports") or []):
                port = p.get("containerPort") if isinstance(p, dict) else None
                if isinstance(port, int) and not 0 < port < 65536:
                    causes.append({"reason": "FieldValueInvalid", "field": f"{path}.ports[{j}].containerPort",
                                   "message": f"Invalid value: {port}: must be between 1 and 65535, inclusive"})
    return causes


def _check_base64(obj: dict, rt: ResourceType) -> None:
    for key, value in (obj.get("data") or {}).items():
        try:
            base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, "BadRequest", f'{rt.kind} in version "{rt.version}" cannot be handled as a '
                                              f"{rt.kind}: illegal base64 data in data.{key}") from None


def _mapping_at(obj: dict, key: str) -> dict:
    """``obj[key]`` when it is a mapping, else an empty one (a wrong type is reported by
    the schema checks, not here)."""
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def _label_key_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_QUALIFIED_NAME.match(name))


def _workload_checks(spec: dict) -> list[dict]:
    causes: list[dict] = []
    selector = spec.get("selector")
    template = _mapping_at(spec, "template")
    labels = ((template.get("metadata") or {}).get("labels")) or {}
    if not isinstance(selector, dict):
        causes.append({"reason": "FieldValueRequired", "field": "spec.selector", "message": "Required value"})
    else:
        match_labels = selector.get("matchLabels") or {}
        exprs = selector.get("matchExpressions") or []
        if not match_labels and not exprs:
            causes.append({"reason": "FieldValueInvalid", "field": "spec.selector",
                           "message": "Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
                                      "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is "
                                      "invalid for deployment"})
        elif any(labels.get(k) != v for k, v in match_labels.items()):
            shown = ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items()))
            causes.append({"reason": "FieldValueInvalid", "field": "spec.template.metadata.labels",
                           "message": f"Invalid value: map[string]string{{{shown}}}: `selector` does not match "
                                      "template `labels`"})
    containers = _mapping_at(template, "spec").get("containers")
    if not containers:
        causes.append({"reason": "FieldValueRequired", "field": "spec.template.spec.containers",
                       "message": "Required value"})
    return causes
