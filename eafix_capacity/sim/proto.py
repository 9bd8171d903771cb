"""Decoding the few protobuf request bodies kubectl sends, into the JSON form.

kubectl's typed clients (``kubectl create namespace|configmap|secret|serviceaccount|deployment|
service|role|clusterrole|rolebinding|clusterrolebinding|token``, the eviction ``kubectl drain``
posts, the reviews of ``kubectl auth``) send
``application/vnd.kubernetes.protobuf`` bodies: the ``k8s\\x00`` magic, a ``runtime.Unknown``
envelope (apiVersion, kind, raw bytes) and the object in protobuf. The sim has no generated
protobuf types, so it decodes the wire format with hand-written field tables for those kinds
only; any other kind is a 415 naming the kind, and responses are always JSON (kubectl
accepts JSON answers).
"""
from __future__ import annotations

import base64
from typing import Any

from eafix_capacity.sim.apierror import ApiError

MAGIC = b"k8s\x00"

# field number -> (json name, type, repeated); type is a scalar name, "map", "mapbytes" or a message table.
Table = dict[int, tuple[str, Any, bool]]

_OWNER_REF: Table = {1: ("kind", "string", False), 3: ("name", "string", False), 4: ("uid", "string", False),
                     5: ("apiVersion", "string", False), 6: ("controller", "bool", False),
                     7: ("blockOwnerDeletion", "bool", False)}
_OBJECT_META: Table = {
    1: ("name", "string", False), 2: ("generateName", "string", False), 3: ("namespace", "string", False),
    5: ("uid", "string", False), 6: ("resourceVersion", "string", False), 7: ("generation", "int", False),
    11: ("labels", "map", False), 12: ("annotations", "map", False), 13: ("ownerReferences", _OWNER_REF, True),
    14: ("finalizers", "string", True),
}
_LOCAL_REF: Table = {1: ("name", "string", False)}
_INT_OR_STRING = "intstr"
_SELECTOR: Table = {1: ("matchLabels", "map", False)}
_CONTAINER: Table = {
    1: ("name", "string", False), 2: ("image", "string", False), 3: ("command", "string", True),
    4: ("args", "string", True), 5: ("workingDir", "string", False),
    6: ("ports", {1: ("name", "string", False), 2: ("hostPort", "int", False), 3: ("containerPort", "int", False),
                  4: ("protocol", "string", False)}, True),
    7: ("env", {1: ("name", "string", False), 2: ("value", "string", False)}, True),
    8: ("resources", {1: ("limits", "mapqty", False), 2: ("requests", "mapqty", False)}, False),
    14: ("imagePullPolicy", "string", False),
}
_POD_TEMPLATE: Table = {
    1: ("metadata", _OBJECT_META, False),
    2: ("spec", {2: ("containers", _CONTAINER, True), 3: ("restartPolicy", "string", False)}, False),
}
_OBJECT_REF: Table = {1: ("kind", "string", False), 2: ("namespace", "string", False), 3: ("name", "string", False)}
_PRECONDITIONS: Table = {1: ("uid", "string", False), 2: ("resourceVersion", "string", False)}
_DELETE_OPTIONS: Table = {1: ("gracePeriodSeconds", "int", False), 2: ("preconditions", _PRECONDITIONS, False),
                          3: ("orphanDependents", "bool", False), 4: ("propagationPolicy", "string", False),
                          5: ("dryRun", "string", True)}
_POLICY_RULE: Table = {1: ("verbs", "string", True), 2: ("apiGroups", "string", True), 3: ("resources", "string", True),
                       4: ("resourceNames", "string", True), 5: ("nonResourceURLs", "string", True)}
_BINDING: Table = {1: ("metadata", _OBJECT_META, False),
                   2: ("subjects", {1: ("kind", "string", False), 2: ("apiGroup", "string", False),
                                    3: ("name", "string", False), 4: ("namespace", "string", False)}, True),
                   3: ("roleRef", {1: ("apiGroup", "string", False), 2: ("kind", "string", False),
                                   3: ("name", "string", False)}, False)}
_KINDS: dict[str, Table] = {
    "Namespace": {1: ("metadata", _OBJECT_META, False), 2: ("spec", {1: ("finalizers", "string", True)}, False)},
    "ConfigMap": {1: ("metadata", _OBJECT_META, False), 2: ("data", "map", False),
                  3: ("binaryData", "mapbytes", False), 4: ("immutable", "bool", False)},
    "Secret": {1: ("metadata", _OBJECT_META, False), 2: ("data", "mapbytes", False), 3: ("type", "string", False),
               4: ("stringData", "map", False), 5: ("immutable", "bool", False)},
    "ServiceAccount": {1: ("metadata", _OBJECT_META, False), 2: ("secrets", _OBJECT_REF, True),
                       3: ("imagePullSecrets", _LOCAL_REF, True), 4: ("automountServiceAccountToken", "bool", False)},
    "Eviction": {1: ("metadata", _OBJECT_META, False), 2: ("deleteOptions", _DELETE_OPTIONS, False)},
    "DeleteOptions": _DELETE_OPTIONS,
    "SelfSubjectAccessReview": {1: ("metadata", _OBJECT_META, False), 2: ("spec", {
        1: ("resourceAttributes", {1: ("namespace", "string", False), 2: ("verb", "string", False),
                                   3: ("group", "string", False), 4: ("version", "string", False),
                                   5: ("resource", "string", False), 6: ("subresource", "string", False),
                                   7: ("name", "string", False)}, False),
        2: ("nonResourceAttributes", {1: ("path", "string", False), 2: ("verb", "string", False)}, False)}, False)},
    "SelfSubjectRulesReview": {1: ("metadata", _OBJECT_META, False),
                               2: ("spec", {1: ("namespace", "string", False)}, False)},
    "SelfSubjectReview": {1: ("metadata", _OBJECT_META, False)},
    # `kubectl create token` (authentication/v1 generated.proto) and `kubectl create role|clusterrole|
    # rolebinding|clusterrolebinding` (rbac/v1 generated.proto).
    "TokenRequest": {1: ("metadata", _OBJECT_META, False), 2: ("spec", {
        1: ("audiences", "string", True), 4: ("expirationSeconds", "int*", False),
        3: ("boundObjectRef", {1: ("kind", "string", False), 2: ("apiVersion", "string", False),
                               3: ("name", "string", False), 4: ("uid", "string", False)}, False)}, False)},
    "Role": {1: ("metadata", _OBJECT_META, False), 2: ("rules", _POLICY_RULE, True)},
    "ClusterRole": {1: ("metadata", _OBJECT_META, False), 2: ("rules", _POLICY_RULE, True),
                    3: ("aggregationRule", {1: ("clusterRoleSelectors", _SELECTOR, True)}, False)},
    "RoleBinding": _BINDING,
    "ClusterRoleBinding": _BINDING,
    # What `kubectl create deployment|service` generators fill in; other fields are not decoded.
    "Deployment": {1: ("metadata", _OBJECT_META, False), 2: ("spec", {
        1: ("replicas", "int*", False), 2: ("selector", _SELECTOR, False), 3: ("template", _POD_TEMPLATE, False)},
        False)},
    "Service": {1: ("metadata", _OBJECT_META, False), 2: ("spec", {
        1: ("ports", {1: ("name", "string", False), 2: ("protocol", "string", False), 3: ("port", "int", False),
                      4: ("targetPort", _INT_OR_STRING, False), 5: ("nodePort", "int", False)}, True),
        2: ("selector", "map", False), 3: ("clusterIP", "string", False), 4: ("type", "string", False),
        6: ("externalName", "string", False)}, False)},
}


def _bad(message: str) -> ApiError:
    return ApiError(400, "BadRequest", f"error decoding protobuf body: {message}")


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise _bad("truncated varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    out: list[tuple[int, int, Any]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise _bad("truncated field")
            value, pos = data[pos:pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise _bad(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _scalar(kind: str, value: Any) -> Any:
    if kind == "string":
        try:
            return bytes(value).decode("utf-8")
        except (UnicodeDecodeError, TypeError) as e:
            raise _bad("a string field is not UTF-8") from e
    if kind == "bool":
        return bool(value)
    if kind in ("int", "int*"):
        return value - (1 << 64) if value >= 1 << 63 else value
    return value


def decode_message(data: bytes, table: Table) -> dict:
    out: dict[str, Any] = {}
    for number, _wire, value in _fields(data):
        if number not in table:
            continue
        name, kind, repeated = table[number]
        if kind in ("map", "mapbytes", "mapqty"):
            entry = {n: v for n, _, v in _fields(value)}
            key = _scalar("string", entry.get(1, b""))
            raw = entry.get(2, b"")
            if kind == "mapqty":
                text = _scalar("string", {n: v for n, _, v in _fields(raw)}.get(1, b""))
            else:
                text = base64.b64encode(raw).decode() if kind == "mapbytes" else _scalar("string", raw)
            out.setdefault(name, {})[key] = text
            continue
        if kind == _INT_OR_STRING:
            parts = {n: v for n, _, v in _fields(value)}
            out[name] = _scalar("string", parts.get(3, b"")) if parts.get(1) == 1 else _scalar("int", parts.get(2, 0))
            continue
        if kind in ("int", "int*") and value == 0 and kind == "int":
            continue
        decoded = decode_message(value, kind) if isinstance(kind, dict) else _scalar(kind, value)
        if decoded == "" and not repeated:
            continue
        if repeated:
            out.setdefault(name, []).append(decoded)
        else:
            out[name] = decoded
    return out


def decode(body: bytes) -> dict:
    """A JSON-form object from a Kubernetes protobuf body; 415 for kinds the sim cannot decode."""
    if not body.startswith(MAGIC):
        raise _bad("missing the k8s protobuf magic prefix")
    envelope = {n: v for n, _, v in _fields(body[len(MAGIC):])}
    type_meta = {n: v for n, _, v in _fields(envelope.get(1, b""))}
    api_version = _scalar("string", type_meta.get(1, b""))
    kind = _scalar("string", type_meta.get(2, b""))
    table = _KINDS.get(kind)
    if table is None:
        raise ApiError(415, "UnsupportedMediaType",
                       f"the sim cluster cannot decode a protobuf {kind or 'object'} ({api_version}); send it as "
                       "application/json (e.g. kubectl create -f FILE instead of a kubectl create generator)")
    obj = decode_message(envelope.get(2, b""), table)
    obj["apiVersion"], obj["kind"] = api_version, kind
    return obj
