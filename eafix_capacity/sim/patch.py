"""The four PATCH flavours of the API server, as pure functions on plain dicts.

- JSON merge patch (RFC 7386, ``application/merge-patch+json``);
- strategic merge patch (``application/strategic-merge-patch+json``): lists with a patch merge
  key are merged element by element, ``$patch``/``$retainKeys``/``$setElementOrder``/
  ``$deleteFromPrimitiveList`` directives as kubectl sends them;
- JSON patch (RFC 6902, ``application/json-patch+json``);
- server-side apply (``application/apply-patch+yaml``) with a simplified field ownership:
  ``managedFields`` record, per manager, the leaf fields it set (``fieldsV1``); applying a
  value another manager owns with a different value is a 409 Conflict unless ``force``.
"""
from __future__ import annotations

import copy
import json
import time
from typing import Any

from eafix_capacity.sim.apierror import ApiError
from eafix_capacity.sim.schemas import Node

Path = tuple[str, ...]


def _err(message: str, code: int = 422, reason: str = "Invalid") -> ApiError:
    return ApiError(code, reason, message)


# --- JSON merge patch -----------------------------------------------------------------------

def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- strategic merge patch ------------------------------------------------------------------

def strategic_merge_patch(original: Any, patch: Any, node: Node) -> Any:
    if not isinstance(patch, dict):
        raise _err("strategic merge patch must be a JSON object", 400, "BadRequest")
    return _smp_map(original if isinstance(original, dict) else {}, patch, node)


def _smp_map(original: dict, patch: dict, node: Node) -> dict | None:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    if directive is not None:
        raise _err(f"Unknown patch type: {directive!r}; valid: replace, delete, merge", 400, "BadRequest")
    result = dict(original)
    orders: dict[str, list] = {}
    deletions: dict[str, list] = {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value if isinstance(value, list) else []
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            deletions[key.split("/", 1)[1]] = value if isinstance(value, list) else []
            continue
        child = node.child(key)
        current = result.get(key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and not child.is_atomic_map:
            merged = _smp_map(current if isinstance(current, dict) else {}, value, child)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _smp_list(current if isinstance(current, list) else [], value, child)
        else:
            result[key] = copy.deepcopy(value)
    for key, values in deletions.items():
        if isinstance(result.get(key), list):
            result[key] = [v for v in result[key] if v not in values]
    for key, order in orders.items():
        if isinstance(result.get(key), list):
            result[key] = _apply_order(result[key], order, node.child(key).merge_key)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _smp_list(original: list, patch: list, node: Node) -> list:
    strategy = node.patch_strategy
    key = node.merge_key
    if "merge" not in strategy:
        return [_strip_directives(copy.deepcopy(v)) for v in patch]
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [copy.deepcopy(p) for p in patch if not (isinstance(p, dict) and p.get("$patch") == "replace")]
    if not key:
        out = list(original)
        for value in patch:
            if value not in out:
                out.append(copy.deepcopy(value))
        return out
    out = [copy.deepcopy(v) for v in original]
    for element in patch:
        if not isinstance(element, dict):
            raise _err(f"a list merged by {key!r} must hold objects, got {element!r}", 400, "BadRequest")
        if element.get("$patch") == "delete":
            out = [o for o in out if not (isinstance(o, dict) and o.get(key) == element.get(key))]
            continue
        if key not in element:
            raise _err(f"map: {element} does not contain declared merge key: {key}", 400, "BadRequest")
        for i, existing in enumerate(out):
            if isinstance(existing, dict) and existing.get(key) == element[key]:
                out[i] = _smp_map(existing, element, node.items()) or {}
                break
        else:
            out.append(_smp_map({}, element, node.items()) or {})
    return out


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def _apply_order(items: list, order: list, key: str | None) -> list:
    def ident(v: Any) -> Any:
        if key and isinstance(v, dict):
            return json.dumps(v.get(key), sort_keys=True)
        if isinstance(v, dict) and key:
            return json.dumps(v.get(key), sort_keys=True)
        return json.dumps(v, sort_keys=True)

    rank = {ident(v): i for i, v in enumerate(order)}
    ordered = [v for v in items if ident(v) in rank]
    ordered.sort(key=lambda v: rank[ident(v)])
    return ordered + [v for v in items if ident(v) not in rank]


# --- JSON patch -----------------------------------------------------------------------------

def json_patch(target: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise _err("json patch must be a JSON array of operations", 400, "BadRequest")
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op:
            raise _err(f"invalid json patch operation {op!r}", 400, "BadRequest")
        kind = op["op"]
        if kind == "add":
            doc = _pointer_set(doc, _path(op), copy.deepcopy(op.get("value")), insert=True)
        elif kind == "remove":
            doc = _pointer_remove(doc, _path(op))
        elif kind == "replace":
            _pointer_get(doc, _path(op))
            doc = _pointer_set(doc, _path(op), copy.deepcopy(op.get("value")), insert=False)
        elif kind in ("move", "copy"):
            value = _pointer_get(doc, _path(op, "from"))
            if kind == "move":
                doc = _pointer_remove(doc, _path(op, "from"))
            doc = _pointer_set(doc, _path(op), copy.deepcopy(value), insert=True)
        elif kind == "test":
            if _pointer_get(doc, _path(op)) != op.get("value"):
                raise _err(f"testing value {op.get('path')} failed: test failed")
        else:
            raise _err(f"Unexpected kind: {kind}", 400, "BadRequest")
    return doc


def _path(op: dict, field: str = "path") -> list[str]:
    text = op.get(field)
    if not isinstance(text, str) or (text and not text.startswith("/")):
        raise _err(f"invalid json patch {field}: {text!r}", 400, "BadRequest")
    if text == "":
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in text[1:].split("/")]


def _pointer_get(doc: Any, parts: list[str]) -> Any:
    cur = doc
    for p in parts:
        if isinstance(cur, dict) and p in cur:
            cur = cur[p]
        elif isinstance(cur, list) and p.isdigit() and int(p) < len(cur):
            cur = cur[int(p)]
        else:
            raise _err(f"doc is missing path: /{'/'.join(parts)}: missing value")
    return cur


def _pointer_set(doc: Any, parts: list[str], value: Any, *, insert: bool) -> Any:
    if not parts:
        return value
    parent = _pointer_get(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-" and insert:
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent) - (0 if insert else 1):
            if insert:
                parent.insert(int(last), value)
            else:
                parent[int(last)] = value
        else:
            raise _err(f"add operation does not apply: doc is missing path: /{'/'.join(parts)}")
    else:
        raise _err(f"doc is missing path: /{'/'.join(parts)}")
    return doc


def _pointer_remove(doc: Any, parts: list[str]) -> Any:
    if not parts:
        raise _err("cannot remove the whole document")
    parent = _pointer_get(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        del parent[int(last)]
    else:
        raise _err(f"Unable to remove nonexistent key: {last}: missing value")
    return doc


# --- field sets (managedFields) -------------------------------------------------------------

_IGNORED_TOP = {"apiVersion", "kind", "status"}
_IGNORED_META = {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                 "managedFields", "deletionTimestamp", "selfLink"}


def field_set(obj: dict, node: Node, *, include_status: bool = False) -> set[Path]:
    """Leaf paths of ``obj`` as fieldsV1 path elements (``f:name``, ``k:{...}``, ``v:...``, ``.``)."""
    out: set[Path] = set()
    for key, value in obj.items():
        if key in _IGNORED_TOP and not (include_status and key == "status"):
            continue
        if key == "metadata" and isinstance(value, dict):
            for mkey, mval in value.items():
                if mkey in _IGNORED_META:
                    continue
                _walk(mval, node.child("metadata").child(mkey), ("f:metadata", f"f:{mkey}"), out)
            continue
        _walk(value, node.child(key), (f"f:{key}",), out)
    return out


def _walk(value: Any, node: Node, prefix: Path, out: set[Path]) -> None:
    if isinstance(value, dict) and value and not node.is_atomic_map:
        for k, v in value.items():
            _walk(v, node.child(k), prefix + (f"f:{k}",), out)
        return
    if isinstance(value, list) and value:
        list_type = node.list_type
        keys = node.map_keys
        if list_type == "map" and keys and all(isinstance(v, dict) for v in value):
            for element in value:
                ident = json.dumps({k: element[k] for k in keys if k in element}, separators=(",", ":"),
                                   sort_keys=True)
                elem_prefix = prefix + (f"k:{ident}",)
                out.add(elem_prefix + (".",))
                for k, v in element.items():
                    _walk(v, node.items().child(k), elem_prefix + (f"f:{k}",), out)
            return
        if list_type == "set":
            for element in value:
                out.add(prefix + (f"v:{json.dumps(element, separators=(',', ':'))}",))
            return
    out.add(prefix)


def to_fields_v1(paths: set[Path]) -> dict:
    root: dict = {}
    for path in sorted(paths):
        cur = root
        for part in path:
            cur = cur.setdefault(part, {})
    return root


def from_fields_v1(tree: Any, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    if not isinstance(tree, dict) or not tree:
        if prefix:
            out.add(prefix)
        return out
    for key, sub in tree.items():
        if key == ".":
            out.add(prefix + (".",))
        else:
            out |= from_fields_v1(sub, prefix + (key,))
    return out


def _get_path(obj: Any, path: Path) -> tuple[bool, Any]:
    cur = obj
    for part in path:
        if part == ".":
            continue
        if part.startswith("f:"):
            if not isinstance(cur, dict) or part[2:] not in cur:
                return False, None
            cur = cur[part[2:]]
        elif part.startswith("k:"):
            ident = json.loads(part[2:])
            if not isinstance(cur, list):
                return False, None
            match = [e for e in cur if isinstance(e, dict) and all(e.get(k) == v for k, v in ident.items())]
            if not match:
                return False, None
            cur = match[0]
        elif part.startswith("v:"):
            value = json.loads(part[2:])
            if not isinstance(cur, list) or value not in cur:
                return False, None
            cur = value
    return True, cur


def _remove_path(obj: Any, path: Path) -> None:
    if not path:
        return
    parent_ok, parent = _get_path(obj, path[:-1])
    last = path[-1]
    if not parent_ok:
        return
    if last == ".":
        _remove_path(obj, path[:-1])
    elif last.startswith("f:") and isinstance(parent, dict):
        parent.pop(last[2:], None)
    elif last.startswith("k:") and isinstance(parent, list):
        ident = json.loads(last[2:])
        parent[:] = [e for e in parent if not (isinstance(e, dict) and all(e.get(k) == v for k, v in ident.items()))]
    elif last.startswith("v:") and isinstance(parent, list):
        value = json.loads(last[2:])
        parent[:] = [e for e in parent if e != value]


def _owners(obj: dict) -> list[dict]:
    return [m for m in (obj.get("metadata") or {}).get("managedFields") or [] if isinstance(m, dict)]


def _entry(manager: str, operation: str, api_version: str, paths: set[Path], subresource: str | None) -> dict:
    entry = {"manager": manager, "operation": operation, "apiVersion": api_version,
             "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "fieldsType": "FieldsV1",
             "fieldsV1": to_fields_v1(paths)}
    if subresource:
        entry["subresource"] = subresource
    return entry


def record_update(old: dict | None, new: dict, node: Node, *, manager: str, subresource: str | None = None) -> None:
    """Give ``manager`` (operation Update) the fields that changed from ``old`` to ``new``, in place."""
    include_status = subresource == "status"
    new_paths = field_set(new, node, include_status=include_status)
    if old is None:
        changed = new_paths
    else:
        changed = {p for p in new_paths if _get_path(old, p) != _get_path(new, p)}
    entries = _owners(old) if old is not None else []
    kept: list[dict] = []
    mine: set[Path] = set()
    for m in entries:
        paths = from_fields_v1(m.get("fieldsV1")) & field_set(new, node, include_status=True)
        if m.get("manager") == manager and m.get("operation") == "Update" and m.get("subresource") == subresource:
            mine |= paths
            continue
        paths -= changed
        if paths:
            kept.append({**m, "fieldsV1": to_fields_v1(paths)})
    mine |= changed
    if mine:
        kept.append(_entry(manager, "Update", new.get("apiVersion", ""), mine, subresource))
    new.setdefault("metadata", {})["managedFields"] = kept


_DEFAULTED_MAP_KEYS = {"protocol": "TCP"}


def _default_map_keys(value: Any, node: Node) -> None:
    """Default list-map key fields (ports' ``protocol``) in an applied configuration, as the server
    does, so its list items are identified like the stored ones."""
    if isinstance(value, dict):
        for k, v in value.items():
            _default_map_keys(v, node.child(k))
    elif isinstance(value, list):
        keys = node.map_keys if node.list_type == "map" else ()
        for element in value:
            if isinstance(element, dict):
                for key in keys:
                    if key in _DEFAULTED_MAP_KEYS and key not in element:
                        element[key] = _DEFAULTED_MAP_KEYS[key]
            _default_map_keys(element, node.items())


def server_side_apply(live: dict | None, applied: dict, node: Node, *, manager: str, force: bool) -> dict:
    """The object after ``manager`` applies ``applied`` onto ``live`` (None: it does not exist yet)."""
    applied = copy.deepcopy(applied)
    _default_map_keys(applied, node)
    applied_paths = field_set(applied, node)
    if live is None:
        result = applied
        result.setdefault("metadata", {})["managedFields"] = [
            _entry(manager, "Apply", applied.get("apiVersion", ""), applied_paths, None)]
        return result
    result = copy.deepcopy(live)
    entries = _owners(live)
    previous: set[Path] = set()
    conflicts: list[tuple[str, Path]] = []
    others: list[tuple[dict, set[Path]]] = []
    for m in entries:
        paths = from_fields_v1(m.get("fieldsV1"))
        if m.get("manager") == manager and m.get("operation") == "Apply":
            previous = paths
            continue
        clash = {p for p in paths & applied_paths if p[-1] != "." and _get_path(live, p) != _get_path(applied, p)}
        if clash and not force:
            conflicts += [(_manager_text(m), p) for p in sorted(clash)]
        others.append((m, paths - clash if force else paths))
    if conflicts:
        raise _conflict_error(conflicts)
    owned_by_others = set().union(*(p for _, p in others)) if others else set()
    for path in sorted(previous - applied_paths - owned_by_others, key=len, reverse=True):
        _remove_path(result, path)
    result = _apply_merge(result, _without_server_meta(applied), node)
    kept = [{**m, "fieldsV1": to_fields_v1(p)} for m, p in others if p]
    kept.append(_entry(manager, "Apply", applied.get("apiVersion", ""), applied_paths, None))
    result.setdefault("metadata", {})["managedFields"] = kept
    return result


def _manager_text(entry: dict) -> str:
    """How the API server names a field manager in a conflict (fieldmanager's printManager):
    ``"kube-controller-manager" with subresource "scale" using apps/v1`` for an Update."""
    text = json.dumps(entry.get("manager", ""))
    if entry.get("subresource"):
        text += f' with subresource {json.dumps(entry["subresource"])}'
    if entry.get("operation") == "Update":
        text += f' using {entry.get("apiVersion", "")}'
    return text


def _conflict_error(conflicts: list[tuple[str, Path]]) -> ApiError:
    """The 409 of a conflicting apply, worded as fieldmanager's NewConflictError words it."""
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {who}", "field": _dotted(p)}
              for who, p in conflicts]
    if len(conflicts) == 1:
        who, p = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {who}: {_dotted(p)}"
    else:
        by_manager: dict[str, list[Path]] = {}
        for who, p in conflicts:
            by_manager.setdefault(who, []).append(p)
        lines = []
        for who in sorted(by_manager):
            lines.append(f"conflicts with {who}:")
            lines += [f"- {_dotted(p)}" for p in by_manager[who]]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, details={"causes": causes})


def _without_server_meta(applied: dict) -> dict:
    out = dict(applied)
    meta = dict(out.get("metadata") or {})
    for key in ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation"):
        meta.pop(key, None)
    out["metadata"] = meta
    return out


def _apply_merge(live: Any, applied: Any, node: Node) -> Any:
    if isinstance(applied, dict) and isinstance(live, dict) and not node.is_atomic_map:
        merged = dict(live)
        for k, v in applied.items():
            merged[k] = _apply_merge(live.get(k), v, node.child(k))
        return merged
    if isinstance(applied, list) and isinstance(live, list):
        keys = node.map_keys
        if node.list_type == "map" and keys:
            elements = list(live)
            for element in applied:
                if not isinstance(element, dict):
                    return copy.deepcopy(applied)
                for i, existing in enumerate(elements):
                    if isinstance(existing, dict) and all(existing.get(k) == element.get(k) for k in keys):
                        elements[i] = _apply_merge(existing, element, node.items())
                        break
                else:
                    elements.append(copy.deepcopy(element))
            return elements
        if node.list_type == "set":
            return list(live) + [copy.deepcopy(v) for v in applied if v not in live]
    return copy.deepcopy(applied)


def _dotted(path: Path) -> str:
    """A managed-fields path as the API server writes it in a conflict's ``field``:
    structured-merge-diff's ``PathElement.String()`` (``.spec.template.spec.containers[name="app"].image``:
    key fields sorted, ``name=value`` with strings quoted; ``[="v"]`` for a set member)."""
    parts = []
    for p in path:
        if p.startswith("f:"):
            parts.append("." + p[2:])
        elif p.startswith("k:"):
            try:
                key = json.loads(p[2:])
            except ValueError:
                key = None
            if isinstance(key, dict):
                parts.append("[" + ",".join(sorted(f"{k}={json.dumps(v)}" for k, v in key.items())) + "]")
            else:
                parts.append(f"[{p[2:]}]")
        elif p.startswith("v:"):
            parts.append(f"[={p[2:]}]")
        elif p.startswith("i:"):
            parts.append(f"[{p[2:]}]")
    return "".join(parts)
