"""The Kubernetes object schemas the sim validates and patches against.

Built-in kinds use the JSON schemas shipped by ``kubernetes-validate`` (the strict flavour,
``additionalProperties: false``, of Kubernetes ``SCHEMA_VERSION``); they keep the
``x-kubernetes-patch-merge-key``/``-patch-strategy``/``-list-type`` extensions that strategic
merge patch and server-side apply need. CRD kinds use their ``openAPIV3Schema``. ``Node``
wraps one schema position so callers walk an object and its schema side by side.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from importlib import resources as importlib_resources

SCHEMA_VERSION = "1.32.0"


@functools.lru_cache(maxsize=1)
def definitions() -> dict[str, dict]:
    """``$defs`` of the strict schema set (loaded once per process, ~1.3 MB)."""
    root = importlib_resources.files("kubernetes_validate") / "kubernetes-json-schema"
    path = root / f"v{SCHEMA_VERSION}-local-strict" / "_definitions.json"
    with path.open(encoding="utf-8") as f:
        return json.load(f)["$defs"]


@functools.lru_cache(maxsize=1)
def _gvk_index() -> dict[tuple[str, str], str]:
    index: dict[tuple[str, str], str] = {}
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or ():
            group, version = gvk.get("group", ""), gvk.get("version", "")
            api_version = f"{group}/{version}" if group else version
            index.setdefault((api_version, gvk["kind"]), name)
    return index


def builtin_definition_name(api_version: str, kind: str) -> str | None:
    return _gvk_index().get((api_version, kind))


@dataclass(frozen=True)
class Node:
    """One position in a schema; ``defs`` resolves ``#/$defs/...`` references.

    A node keeps its resolved schema and the children asked for, so walking the same positions
    again (every write walks its object several times: pruning, managed fields, patches) costs
    lookups; ``builtin_node`` hands out one root per kind, so that tree is built once per process.
    """

    schema: dict
    defs: dict | None = None
    _children: dict[str, Node] = field(default_factory=dict, init=False, repr=False, compare=False)

    def _resolve(self, schema: dict) -> dict:
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and self.defs is not None and seen < 50:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = {**self.defs.get(name, {}), **{k: v for k, v in schema.items() if k != "$ref"}}
            seen += 1
        return schema if isinstance(schema, dict) else {}

    @functools.cached_property
    def resolved(self) -> dict:
        return self._resolve(self.schema)

    def child(self, key: str) -> Node:
        props = self.resolved.get("properties") or {}
        if key not in props:
            return self._other
        node = self._children.get(key)
        if node is None:
            node = self._children[key] = Node(props[key], self.defs)
        return node

    @functools.cached_property
    def _other(self) -> Node:
        """The node of every key that is not a declared property (one node: map keys are data)."""
        extra = self.resolved.get("additionalProperties")
        return Node(extra if isinstance(extra, dict) else {}, self.defs)

    @functools.cached_property
    def _items(self) -> Node:
        return Node(self.resolved.get("items") or {}, self.defs)

    def items(self) -> Node:
        return self._items

    @property
    def merge_key(self) -> str | None:
        s = self.resolved
        if s.get("x-kubernetes-patch-merge-key"):
            return s["x-kubernetes-patch-merge-key"]
        keys = s.get("x-kubernetes-list-map-keys")
        return keys[0] if keys else None

    @property
    def map_keys(self) -> tuple[str, ...]:
        s = self.resolved
        keys = s.get("x-kubernetes-list-map-keys")
        if keys:
            return tuple(keys)
        return (s["x-kubernetes-patch-merge-key"],) if s.get("x-kubernetes-patch-merge-key") else ()

    @property
    def patch_strategy(self) -> str:
        return str(self.resolved.get("x-kubernetes-patch-strategy") or "")

    @property
    def list_type(self) -> str:
        s = self.resolved
        if s.get("x-kubernetes-list-type"):
            return s["x-kubernetes-list-type"]
        if "merge" in self.patch_strategy:
            return "map" if s.get("x-kubernetes-patch-merge-key") else "set"
        return "atomic"

    @property
    def is_atomic_map(self) -> bool:
        s = self.resolved
        return s.get("x-kubernetes-map-type") == "atomic" and not s.get("properties")

    @property
    def known(self) -> bool:
        return bool(self.resolved)


@functools.lru_cache(maxsize=512)
def builtin_node(api_version: str, kind: str) -> Node | None:
    name = builtin_definition_name(api_version, kind)
    if name is None:
        return None
    defs = definitions()
    return Node(defs[name], defs)


def crd_node(schema: dict | None) -> Node:
    return Node(schema or {}, None)
