"""Server-side validation of objects: decoding (unknown fields, types, quantities), schemas, semantics.

Mirrors the three stages of a real API server's write path:
1. decoding: unknown fields are dropped and reported in ``Warning`` headers (the server's default,
   ``fieldValidation=Warn``), dropped silently with ``Ignore``, or refused with ``Strict`` (400
   ``Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown
   field "spec.foo"``); a value of the wrong JSON type is a 400
   ``cannot unmarshal`` error, as is a malformed quantity (``quantities must match the regular
   expression ...``) or malformed base64 in a Secret; quantities are stored in the canonical form
   ``resource.Quantity`` serialises them in (``0.5`` -> ``500m``) and Secret data re-encoded;
2. schema checks (required fields, enums) against the Kubernetes schemas, a 422 Invalid with
   ``details.causes`` field paths;
3. the semantic rules the schemas cannot express, from the one table in ``rules.py``.
CRD kinds are checked against their ``openAPIV3Schema`` the same way.
"""
from __future__ import annotations

import base64
import copy
import functools
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any


from eafix_capacity import quantity
from eafix_capacity.sim import defaults, rules
from eafix_capacity.sim.apierror import ApiError, invalid
from eafix_capacity.sim.resources import Registry, ResourceType
from eafix_capacity.sim.schemas import Node, builtin_definition_name, builtin_node, crd_node, definitions

if TYPE_CHECKING:
    import jsonschema

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


def validate(obj: dict, rt: ResourceType, registry: Registry, *, mode: str = "Warn",
             partial: bool = False, old: dict | None = None) -> Outcome:
    """Check ``obj``; returns it with unknown fields pruned and values in stored form, or raises
    ApiError 400/422.

    ``mode`` is the ``fieldValidation`` parameter; without one a real server warns (``Warn``).
    ``partial`` (a server-side apply configuration) checks field names and types only: required
    fields and semantic rules apply to the merged object, not to what one manager sends.
    ``old`` is the stored object on update, for the rules about changes (an immutable selector).
    """
    mode = mode or "Warn"
    if mode not in ("Strict", "Warn", "Ignore"):
        raise ApiError(400, "BadRequest", f'fieldValidation must be one of "Ignore", "Warn", "Strict", got "{mode}"')
    node, is_crd = _node_for(rt, registry)
    obj = copy.deepcopy(obj)
    unknown: list[str] = []
    if node is not None and node.known:
        _prune(obj, node, "", unknown, is_crd=is_crd)
    if not is_crd:
        _decode_values(obj, rt)
    if node is not None and node.known:
        if unknown and mode == "Strict":
            text = ", ".join(f'unknown field "{u}"' for u in unknown)
            raise _cannot_handle(rt, f"strict decoding error: {text}")
        _type_and_schema_checks(obj, rt, node, is_crd, partial=partial)
    if not partial:
        _semantic_checks(obj, rt, old, builtin=not is_crd)
    warnings = [f'unknown field "{u}"' for u in unknown] if mode == "Warn" else []
    return Outcome(obj, warnings)


def validate_merged(obj: dict, rt: ResourceType, registry: Registry, *, old: dict | None) -> None:
    """Check the object a server-side apply made, or raise ApiError 400/422, as ``validate(obj,
    mode="Strict", old=old)`` does, in a fraction of its time when the object is valid.

    It merged an apply configuration that ``validate(partial=True)`` passed onto the stored object,
    both pruned and decoded already, so what is left to find is mostly a required field that is
    missing, then the semantic rules. ``_may_be_invalid`` walks the object against the schema of
    a built-in kind (every keyword those schemas use, without jsonschema's per-keyword cost);
    only when it finds something, ``validate`` checks it all and words the refusal. A CRD's
    ``openAPIV3Schema`` may use any keyword: a custom resource is always checked by ``validate``.
    """
    node, is_crd = _node_for(rt, registry)
    def_name = builtin_definition_name(rt.api_version, rt.kind)
    # status too: validate's pruning refuses a field its schema lacks there
    if is_crd or node is None or not node.known or def_name is None or not _in_stored_form(obj, rt) or (
            _may_be_invalid(obj, {"$ref": f"#/$defs/{def_name}"}, definitions())):
        validate(obj, rt, registry, mode="Strict", old=old)
        return
    _semantic_checks(obj, rt, old, builtin=True)


def _in_stored_form(obj: dict, rt: ResourceType) -> bool:
    """Whether decoding would leave ``obj``'s values as they are (``_decode_values``, which may
    also refuse them): quantities in canonical form, Secret data in standard base64."""
    for pattern in rules.quantity_fields(rt.group, rt.kind):
        for container, key in rules.quantity_slots(obj, pattern):
            value = container[key]
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                continue
            if quantity.server_error(value) is not None or quantity.server_text(value) != value:
                return False
    if rt.kind == "Secret" and rt.group == "" and isinstance(obj.get("data"), dict):
        for value in obj["data"].values():
            if isinstance(value, str):
                decoded, bad_at = go_base64_decode(value)
                if bad_at is not None or base64.b64encode(decoded).decode() != value:
                    return False
    return True


_JSON_TYPES: dict[type, tuple[str, ...]] = {
    bool: ("boolean",), int: ("integer", "number"), float: ("number",), str: ("string",), type(None): ("null",),
    dict: ("object",), list: ("array",)}
_OTHER_KEYWORDS = frozenset({
    "allOf", "anyOf", "not", "const", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "multipleOf", "minLength", "maxLength", "minItems", "maxItems", "uniqueItems", "additionalItems", "contains",
    "minProperties", "maxProperties", "patternProperties", "propertyNames", "dependencies", "if"})


def _may_be_invalid(value: Any, schema: Any, defs: dict) -> bool:
    """Whether ``value`` may fail its built-in ``schema`` (strict: no unknown field), walked as the
    Draft 7 validator walks it (a ``$ref`` replaces its siblings); the keywords of these schemas
    are ``$ref``, ``type``, ``enum``, ``format`` (int32/int64), ``required``, ``properties``,
    ``additionalProperties``, ``items`` and the ``oneOf`` of Quantity and IntOrString. Anything
    else it meets counts as a possible failure, for ``validate`` to decide."""
    depth = 0
    while isinstance(schema, dict) and "$ref" in schema:
        schema = defs.get(str(schema["$ref"]).rsplit("/", 1)[-1])
        depth += 1
        if depth > 50:
            return True
    if schema is True:  # an additionalProperties that allows anything (FieldsV1's keys)
        return False
    if not isinstance(schema, dict) or not _OTHER_KEYWORDS.isdisjoint(schema):
        return True
    kinds = _JSON_TYPES.get(type(value))
    if kinds is None or (isinstance(value, float) and value.is_integer()):
        return True  # not a JSON value, or a float that is also an "integer": let validate decide
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(k in types for k in kinds):
            return True
    if "enum" in schema and value not in schema["enum"]:
        return True
    if "format" in schema and schema["format"] in _INT_RANGES and isinstance(value, int):
        low, high = _INT_RANGES[schema["format"]]
        if not low <= value <= high:
            return True
    if "oneOf" in schema:
        # Quantity, IntOrString: one branch per type, each also allowing null (so null matches both)
        matching = [b for b in schema["oneOf"] if isinstance(b, dict) and not _may_be_invalid(value, b, defs)]
        if len(matching) != 1:
            return True
    if isinstance(value, dict):
        if any(key not in value for key in schema.get("required") or ()):
            return True
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties", True)
        for key, sub in value.items():
            if _may_be_invalid(sub, props[key] if key in props else extra, defs):
                return True
    elif isinstance(value, list) and "items" in schema:
        return any(_may_be_invalid(v, schema["items"], defs) for v in value)
    return False


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


@functools.lru_cache(maxsize=1)
def _int_formats() -> jsonschema.FormatChecker:
    # Imported on the first validation, not with the module: jsonschema is a fifth of a cold
    # `sim up`'s start before it serves /healthz.
    import jsonschema

    checker = jsonschema.FormatChecker(formats=())
    for name, (low, high) in _INT_RANGES.items():
        # Go decodes these fields into int32/int64: a larger number is a decoding error there, and
        # here it would otherwise reach the controllers (2**40 replicas).
        checker.checks(name)(lambda value, low=low, high=high: not isinstance(value, int)
                             or isinstance(value, bool) or low <= value <= high)
    return checker


@functools.lru_cache(maxsize=256)
def _builtin_validator(def_name: str) -> jsonschema.protocols.Validator:
    import jsonschema

    schema = {"$ref": f"#/$defs/{def_name}", "$defs": definitions()}
    return jsonschema.Draft7Validator(schema, format_checker=_int_formats())


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
        import jsonschema

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


def _semantic_checks(obj: dict, rt: ResourceType, old: dict | None, *, builtin: bool) -> None:
    # A real server validates the defaulted object (defaulting is part of decoding), and an update
    # is compared with the stored, defaulted one: check a defaulted copy.
    target = obj
    if builtin:
        target = copy.deepcopy(obj)
        defaults.apply_defaults(target, rt.group, rt.kind)
    causes = rules.check(target, rt.group, rt.kind, old=old)
    if causes:
        raise invalid(rt.kind, rt.group, (obj.get("metadata") or {}).get("name") or "", causes)


def _cannot_handle(rt: ResourceType, why: str) -> ApiError:
    """The 400 a real server's decoder gives (transformDecodeError)."""
    return ApiError(400, "BadRequest", f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: {why}')


def _decode_values(obj: dict, rt: ResourceType) -> None:
    """What decoding into Go types does to values: quantities parsed and kept in canonical form,
    Secret ``data`` base64-decoded (and so re-encoded without line breaks)."""
    for pattern in rules.quantity_fields(rt.group, rt.kind):
        for container, key in rules.quantity_slots(obj, pattern):
            value = container[key]
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                continue  # not a quantity at all: the type checks report it
            error = quantity.server_error(value)
            if error is not None:
                raise _cannot_handle(rt, error)
            container[key] = quantity.server_text(value)
    if rt.kind == "Secret" and rt.group == "" and isinstance(obj.get("data"), dict):
        for key, value in obj["data"].items():
            if not isinstance(value, str):
                continue
            decoded, bad_at = go_base64_decode(value)
            if bad_at is not None:
                raise _cannot_handle(rt, f"illegal base64 data at input byte {bad_at}")
            obj["data"][key] = base64.b64encode(decoded).decode()


_B64_ALPHABET = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def go_base64_decode(text: str) -> tuple[bytes, int | None]:
    """Go's ``base64.StdEncoding.Decode``, which the JSON decoder uses for ``[]byte`` fields: it skips
    ``\\r`` and ``\\n`` anywhere; returns (bytes, None) or (b"", offset of the bad input byte)."""
    src = text.encode("utf-8", "surrogatepass")
    out = bytearray()
    si, n = 0, len(src)
    while si < n:
        quantum: list[int] = []
        while len(quantum) < 4:
            if si == n:
                if not quantum:
                    return bytes(out), None
                return b"", si - len(quantum)  # padding is required: a short final quantum is an error
            ch = src[si]
            si += 1
            if chr(ch) in _B64_ALPHABET:
                quantum.append(_B64_ALPHABET[chr(ch)])
                continue
            if ch in (0x0A, 0x0D):
                continue
            if ch != ord("=") or len(quantum) < 2:
                return b"", si - 1
            if len(quantum) == 2:  # "==" expected: skip line breaks, then the second "="
                while si < n and src[si] in (0x0A, 0x0D):
                    si += 1
                if si == n:
                    return b"", n
                if src[si] != ord("="):
                    return b"", si - 1
                si += 1
            while si < n and src[si] in (0x0A, 0x0D):
                si += 1
            if si < n:
                return b"", si  # data after the padding
            break
        value = 0
        for i, q in enumerate(quantum + [0] * (4 - len(quantum))):
            value |= q << (18 - 6 * i)
        out += value.to_bytes(3, "big")[:len(quantum) - 1]
    return bytes(out), None
