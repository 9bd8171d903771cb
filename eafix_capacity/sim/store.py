"""The sim cluster's object store: what etcd plus the generic registry do in a real API server.

Objects are kept per resource type as immutable dicts together with their JSON encoding
(so lists and watches are served without re-encoding). The dicts are kept compact (see
:func:`compact`): decoded naively, 10,000 pods take several times their JSON size, mostly in
repeated key and value strings and in parts that do not change from one version to the
next. Every committed change gets the next global ``resourceVersion`` and is appended to a
bounded event log that watches replay from. Metadata the server owns (uid, resourceVersion,
creationTimestamp, generation) is set here, as are namespace existence, optimistic
concurrency and garbage collection through ``ownerReferences``. Subscribers (the
controllers) hear about every change; a journal (``--state``'s write-ahead log, see
:mod:`eafix_capacity.sim.wal`) records each one before it is applied.
"""
from __future__ import annotations

import builtins
import json
import random
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from eafix_capacity.sim import batch, defaults, resources as R
from eafix_capacity.sim.apierror import ApiError, already_exists, bad_request, conflict, invalid, not_found
from eafix_capacity.sim.clock import SimClock, rfc3339
from eafix_capacity.sim.resources import Registry, ResourceType
from eafix_capacity.sim.selectors import matcher

__all__ = ["ApiError", "Store", "WatchEvent", "now_rfc3339", "encode", "compact", "server_order",
           "type_meta_prefix"]

Subscriber = Callable[[str, ResourceType, dict], None]
Journal = Callable[[int, str, str, str, str, bytes], None]
"""``journal(rv, event_type, key, namespace, name, raw)``; raising ``ApiError`` refuses the change."""

_GEN_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# Top-level keys that are not "spec" for generation purposes.
NAMESPACE_TERMINATION_SECONDS = 0.5
"""How long a deleted namespace stays Terminating before it and its content disappear."""
_NON_SPEC_KEYS = frozenset({"apiVersion", "kind", "metadata", "status"})
INTERN_MAX_CHARS = 64
"""String values up to this length are interned by :func:`compact` (names, labels, images,
timestamps, enum-like values); longer ones (messages, annotations) are seldom repeated."""
_ABSENT = object()
_intern = sys.intern


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def encode(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def server_order(obj: dict, *, builtin: bool) -> dict:
    """``obj`` with its top-level keys in the order a real API server encodes them.

    A built-in type is a Go struct: ``kind`` and ``apiVersion`` (the inlined TypeMeta) come
    first, then ``metadata`` (as a real ``{"kind":"Pod","apiVersion":"v1","metadata":...``
    response). A custom resource is an unstructured map, which encoding/json writes in sorted
    key order. Lists of built-in types rely on the ``kind``-first prefix to drop it from items
    without re-encoding them (see :func:`type_meta_prefix`). Only the top level is rebuilt:
    nested values are shared with ``obj``.
    """
    if not builtin:
        return dict(sorted(obj.items()))
    ordered = {key: obj[key] for key in ("kind", "apiVersion", "metadata") if key in obj}
    ordered.update(obj)  # the remaining keys in their own order; the three above keep their place
    return ordered


def type_meta_prefix(kind: str, api_version: str) -> bytes:
    """How a stored built-in object's encoding starts: ``{"kind":...,"apiVersion":...,``."""
    return b'{"kind":' + encode(kind) + b',"apiVersion":' + encode(api_version) + b","


def compact(value: Any, like: Any = None) -> Any:
    """A copy of the JSON value ``value`` that costs less memory to keep, equal to it.

    Every key, and every string value of up to :data:`INTERN_MAX_CHARS` characters, is
    interned (one object per distinct string across all stored objects: the same ~80 keys,
    label values, image names and timestamps recur in every pod). Parts of ``value`` equal to
    the same part of ``like`` (the previous version of the object) are taken from ``like``
    instead of copied, so successive versions share what did not change.

    ``==`` treats ``1``, ``1.0`` and ``True`` as equal, so a part taken from ``like`` may differ
    in type: callers that pass ``like`` check the result's encoding (see ``Store._commit``).
    The result shares parts with ``like``: neither may be mutated afterwards.
    """
    kind = type(value)
    if kind is dict:
        old_members: dict = like if type(like) is dict else {}
        return {_intern(k): _compact_part(v, old_members.get(k, _ABSENT)) for k, v in value.items()}
    if kind is list:
        old_items: builtins.list | tuple = like if type(like) is list else ()
        return [_compact_part(v, old_items[i] if i < len(old_items) else _ABSENT) for i, v in enumerate(value)]
    if kind is str:
        return _intern(value) if len(value) <= INTERN_MAX_CHARS else value
    return value


def _compact_part(value: Any, old: Any) -> Any:
    """One member of a dict or list: the previous version's part when equal, else compacted."""
    if old is _ABSENT:
        return compact(value)
    return old if value == old else compact(value, old)


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One committed change as the event log keeps it: encoded bytes only, parsed on demand."""

    rv: int
    type: str
    rt_key: str
    namespace: str
    name: str
    raw: bytes
    prev_raw: bytes | None = None

    @property
    def obj(self) -> dict:
        return json.loads(self.raw)

    @property
    def prev(self) -> dict | None:
        return json.loads(self.prev_raw) if self.prev_raw is not None else None


@dataclass(slots=True)
class _Entry:
    obj: dict  # compact (see compact()); shared with list_objects() callers, never mutated
    raw: bytes


class Store:
    """Thread-safe object store; every method raises ``ApiError`` with the real server's codes."""

    def __init__(self, registry: Registry | None = None, *, log_size: int = 20_000, seed: int = 0,
                 clock: SimClock | None = None) -> None:
        self.registry = registry or Registry()
        self.clock = clock
        """The sim clock every timestamp the store writes comes from (None: the wall clock)."""
        self.lock = threading.RLock()
        self._changed = threading.Condition(self.lock)
        self._data: dict[str, dict[tuple[str, str], _Entry]] = {}
        self._owned: dict[str, set[tuple[str, str, str]]] = {}
        self._sorted: dict[str, list[tuple[tuple[str, str], _Entry]]] = {}
        self._rv = 0
        self._log: deque[WatchEvent] = deque(maxlen=log_size)
        self._subscribers: list[Subscriber] = []
        self._journal: Journal | None = None
        self._rand = random.Random(seed)
        self.closed = False
        for ns in _INITIAL_NAMESPACES:
            self.create(R.NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    def now_text(self) -> str:
        """Now as metav1.Time text, on the sim clock when the store has one."""
        return self.clock.now_text() if self.clock is not None else now_rfc3339()

    # --- reads -------------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        with self.lock:
            return self._rv

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> dict:
        return json.loads(self.get_raw(rt, namespace, name))

    def get_raw(self, rt: ResourceType, namespace: str | None, name: str) -> bytes:
        with self.lock:
            entry = self._data.get(rt.key, {}).get((self._ns(rt, namespace), name))
        if entry is None:
            raise not_found(rt.plural, rt.group, name)
        return entry.raw

    def exists(self, rt: ResourceType, namespace: str | None, name: str) -> bool:
        with self.lock:
            return (self._ns(rt, namespace), name) in self._data.get(rt.key, {})

    def list(self, rt: ResourceType, namespace: str | None = None, *, label_selector: str | None = None,
             field_selector: str | None = None) -> tuple[list[dict], str]:
        raws, rv = self.list_raw(rt, namespace, label_selector=label_selector, field_selector=field_selector)
        return [json.loads(r) for r in raws], rv

    def list_objects(self, rt: ResourceType, namespace: str | None = None, *, label_selector: str | None = None,
                     field_selector: str | None = None) -> tuple[builtins.list[dict], builtins.list[bytes], str]:
        """Stored objects (shared: callers must not mutate them) with their encodings, sorted."""
        match = matcher(label_selector, field_selector, rt.kind)
        with self.lock:
            entries = self._sorted_entries(rt.key)
            rv = str(self._rv)
        if rt.namespaced and namespace:
            entries = [kv for kv in entries if kv[0][0] == namespace]
        objs, raws = [], []
        for _, entry in entries:
            if match(entry.obj):
                objs.append(entry.obj)
                raws.append(entry.raw)
        return objs, raws, rv

    def _sorted_entries(self, key: str) -> builtins.list[tuple[tuple[str, str], _Entry]]:
        """(namespace, name)-sorted entries of one type, cached until the type next changes."""
        cached = self._sorted.get(key)
        if cached is None:
            cached = sorted(self._data.get(key, {}).items(), key=lambda kv: kv[0])
            self._sorted[key] = cached
        return cached

    def list_raw(self, rt: ResourceType, namespace: str | None = None, *, label_selector: str | None = None,
                 field_selector: str | None = None) -> tuple[builtins.list[bytes], str]:
        _, raws, rv = self.list_objects(rt, namespace, label_selector=label_selector, field_selector=field_selector)
        return raws, rv

    def count(self, rt: ResourceType) -> int:
        with self.lock:
            return len(self._data.get(rt.key, {}))

    # --- writes ------------------------------------------------------------------------------

    def create(self, rt: ResourceType, obj: dict, *, dry_run: bool = False) -> dict:
        return json.loads(self.create_raw(rt, obj, dry_run=dry_run))

    def create_raw(self, rt: ResourceType, obj: dict, *, dry_run: bool = False) -> bytes:
        obj = _plain_copy(obj)
        meta = _meta(obj, rt)
        if meta.get("resourceVersion"):
            raise bad_request("resourceVersion should not be set on objects to be created")
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        with self.lock:
            ns = self._ns(rt, meta.get("namespace"))
            if rt.namespaced:
                meta["namespace"] = ns
                if rt.key != R.NAMESPACE.key and not self._namespace_usable(ns):
                    raise not_found("namespaces", "", ns)
                if rt.key != R.NAMESPACE.key and self._namespace_terminating(ns):
                    raise ApiError(403, "Forbidden", f'{rt.plural} "{meta.get("name") or ""}" is forbidden: unable '
                                                     f"to create new content in namespace {ns} because it is being "
                                                     "terminated", details={"name": meta.get("name") or "",
                                                                           "kind": rt.plural})
            else:
                meta.pop("namespace", None)
            if not meta.get("name"):
                if meta.get("generateName"):
                    meta["name"] = self._generate_name(rt, ns, meta["generateName"])
                else:
                    raise invalid(rt.kind, rt.group, "", [{"reason": "FieldValueRequired",
                                                         "message": "Required value: name or generateName is required",
                                                         "field": "metadata.name"}])
            name = meta["name"]
            table = self._data.setdefault(rt.key, {})
            if (ns, name) in table:
                raise already_exists(rt.plural, rt.group, name)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = self.now_text()
            if defaults.tracks_generation(rt.group, rt.kind, builtin=self.registry.is_builtin(rt)):
                meta["generation"] = 1
            else:
                meta.pop("generation", None)
            meta.pop("deletionTimestamp", None)
            if rt.key == R.JOB.key:
                batch.generate_selector(obj, meta["uid"])  # needs the uid, like the Job strategy's Validate
            if rt.key == R.NAMESPACE.key:
                obj.setdefault("spec", {"finalizers": ["kubernetes"]})
                obj["status"] = {"phase": "Active"}
            if dry_run:
                meta["resourceVersion"] = str(self._rv)
                return encode(server_order(obj, builtin=self.registry.is_builtin(rt)))
            return self._commit("ADDED", rt, ns, name, obj)

    def update(self, rt: ResourceType, obj: dict, *, subresource: str | None = None, dry_run: bool = False) -> dict:
        return json.loads(self.update_raw(rt, obj, subresource=subresource, dry_run=dry_run))

    def update_raw(self, rt: ResourceType, obj: dict, *, subresource: str | None = None,
                   dry_run: bool = False) -> bytes:
        obj = _plain_copy(obj)
        meta = _meta(obj, rt)
        name = meta.get("name") or ""
        with self.lock:
            ns = self._ns(rt, meta.get("namespace"))
            entry = self._data.get(rt.key, {}).get((ns, name))
            if entry is None:
                raise not_found(rt.plural, rt.group, name)
            old = entry.obj
            want_rv = meta.get("resourceVersion")
            if want_rv and want_rv != old["metadata"]["resourceVersion"]:
                raise conflict(rt.plural, rt.group, name,
                               "the object has been modified; please apply your changes to the latest version "
                               "and try again")
            if subresource == "status":
                new = dict(old)
                if "status" in obj:
                    new["status"] = obj["status"]
                else:
                    new.pop("status", None)
                new["metadata"] = dict(old["metadata"])
                if "managedFields" in meta:
                    new["metadata"]["managedFields"] = meta["managedFields"]
            else:
                new = obj
                new["apiVersion"], new["kind"] = rt.api_version, rt.kind
                for key in ("uid", "creationTimestamp", "generation", "deletionTimestamp",
                            "deletionGracePeriodSeconds"):
                    if key in old["metadata"]:
                        meta[key] = old["metadata"][key]
                    else:
                        meta.pop(key, None)
                if "managedFields" not in meta and "managedFields" in old["metadata"]:
                    meta["managedFields"] = old["metadata"]["managedFields"]
                if rt.namespaced:
                    meta["namespace"] = ns
                if "status" in rt.subresources or rt.key == R.NAMESPACE.key:
                    if "status" in old:
                        new["status"] = old["status"]
                    else:
                        new.pop("status", None)
                if "generation" in old["metadata"] and not _same(_spec_of(new), _spec_of(old)):
                    meta["generation"] = int(old["metadata"]["generation"]) + 1
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            if _same(new, old):
                return entry.raw
            if dry_run:
                return encode(server_order(new, builtin=self.registry.is_builtin(rt)))
            return self._commit("MODIFIED", rt, ns, name, new)

    def delete(self, rt: ResourceType, namespace: str | None, name: str, *, dry_run: bool = False,
               propagation: str = "Background", preconditions: dict | None = None,
               grace_period_seconds: int | None = None) -> dict:
        """Delete an object; a pod bound to a node is deleted gracefully (see :meth:`_graceful_delete`):
        it gets ``deletionTimestamp`` and stays (Terminating) until its kubelet deletes it again
        with ``grace_period_seconds=0``."""
        with self.lock:
            ns = self._ns(rt, namespace)
            entry = self._data.get(rt.key, {}).get((ns, name))
            if entry is None:
                raise not_found(rt.plural, rt.group, name)
            pre = preconditions or {}
            meta = entry.obj["metadata"]
            if pre.get("uid") and pre["uid"] != meta.get("uid"):
                raise conflict(rt.plural, rt.group, name,
                               f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                               f"{meta.get('uid')}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
                raise conflict(rt.plural, rt.group, name,
                               "the object has been modified; please apply your changes to the latest version "
                               "and try again")
            if rt.key == R.POD.key:
                pending = self._graceful_delete(ns, name, entry, grace_period_seconds, dry_run=dry_run)
                if pending is not None:
                    return pending
            if dry_run:
                return json.loads(entry.raw)
            if rt.key == R.NAMESPACE.key:
                return self._terminate_namespace(name, entry)
            uid = meta.get("uid", "")
            if propagation == "Orphan":
                self._orphan_dependents(uid)
            else:
                self._delete_dependents(uid)
            self._remove(rt, ns, name)
            return json.loads(entry.raw)

    def delete_collection(self, rt: ResourceType, namespace: str | None, *, label_selector: str | None = None,
                          field_selector: str | None = None, dry_run: bool = False) -> builtins.list[dict]:
        with self.lock:
            objs, _, _ = self.list_objects(rt, namespace, label_selector=label_selector, field_selector=field_selector)
            names = [(o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objs]
            return [self.delete(rt, ns, n, dry_run=dry_run) for ns, n in names if self.exists(rt, ns, n)]

    def subscribe(self, callback: Subscriber) -> None:
        """Call ``callback(event_type, rt, obj)`` after each committed change.

        ``obj`` is a decoded copy of the committed object, one per change shared by all
        subscribers: read it, do not mutate it. Callbacks run in the writing thread while the
        store lock is held, in commit order; they must be quick (enqueue work) and must not wait
        for other threads. Exceptions are ignored.
        """
        with self.lock:
            self._subscribers.append(callback)

    # --- watch support -----------------------------------------------------------------------

    def events_since(self, rv: int, rt: ResourceType) -> builtins.list[WatchEvent]:
        """Committed events of ``rt`` with resourceVersion > rv; 410 Gone if the log no longer reaches back."""
        with self.lock:
            # The log replays changes after ``oldest``; after a restore it starts empty at the restored version.
            oldest = self._log[0].rv - 1 if self._log else self._rv
            if rv < oldest:
                raise ApiError(410, "Expired", f"too old resource version: {rv} ({oldest})")
            if rv > self._rv:
                return []
            out: builtins.list[WatchEvent] = []
            for ev in reversed(self._log):
                if ev.rv <= rv:
                    break
                if ev.rt_key == rt.key:
                    out.append(ev)
            out.reverse()
            return out

    def wait_for_change(self, rv: int, timeout: float) -> int:
        """Block until the store's resourceVersion exceeds ``rv`` or ``timeout`` passes."""
        with self._changed:
            if self._rv <= rv and not self.closed:
                self._changed.wait(timeout)
            return self._rv

    def close(self) -> None:
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    # --- persistence -------------------------------------------------------------------------

    def dump(self) -> dict:
        with self.lock:
            return {"resourceVersion": self._rv,
                    "objects": {key: [e.obj for e in table.values()] for key, table in self._data.items() if table}}

    def dump_raw(self, *, header: dict | None = None) -> tuple[int, bytes]:
        """(resourceVersion, the ``dump()`` document as JSON) built from the cached encodings;
        the members of ``header`` come first in the document."""
        with self.lock:
            rv = self._rv
            parts = [encode(key) + b":[" + b",".join(e.raw for e in table.values()) + b"]"
                     for key, table in self._data.items() if table]
        head = b"{" + encode(header)[1:-1] + b"," if header else b"{"
        return rv, head + b'"resourceVersion":%d,"objects":{' % rv + b",".join(parts) + b"}}"

    def set_journal(self, journal: Journal | None) -> None:
        """Have ``journal`` record every change before it is applied (None: stop recording)."""
        with self.lock:
            self._journal = journal

    def restore(self, state: dict) -> None:
        """Replace the content with what ``dump()`` returned (no events are emitted)."""
        with self.lock:
            self._data.clear()
            self._sorted.clear()
            self._owned.clear()
            self._log.clear()
            self._rv = int(state.get("resourceVersion", 0))
            for key, objs in (state.get("objects") or {}).items():
                table = self._data.setdefault(key, {})
                rt = self._resolve_key(key)
                builtin = self.registry.is_builtin(rt) if rt is not None else any(b.key == key
                                                                                 for b in R.BUILTIN_TYPES)
                for obj in objs:
                    meta = obj["metadata"]
                    stored = compact(server_order(obj, builtin=builtin))  # state saved before the order was kept
                    table[(meta.get("namespace", ""), meta["name"])] = _Entry(stored, encode(stored))
                    self._index_owners(key, stored, add=True)
            # A namespace saved while Terminating would otherwise stay so forever: finish it.
            for (_, name), entry in (self._data.get(R.NAMESPACE.key) or {}).items():
                if entry.obj["metadata"].get("deletionTimestamp"):
                    self._finish_namespace_later(name)

    # --- internals ---------------------------------------------------------------------------

    def _ns(self, rt: ResourceType, namespace: str | None) -> str:
        return (namespace or "default") if rt.namespaced else ""

    def _namespace_usable(self, ns: str) -> bool:
        return ("", ns) in self._data.get(R.NAMESPACE.key, {})

    def _namespace_terminating(self, ns: str) -> bool:
        entry = self._data.get(R.NAMESPACE.key, {}).get(("", ns))
        return entry is not None and bool(entry.obj["metadata"].get("deletionTimestamp"))

    def _generate_name(self, rt: ResourceType, ns: str, prefix: str) -> str:
        table = self._data.get(rt.key, {})
        while True:
            name = prefix[:58] + "".join(self._rand.choice(_GEN_CHARS) for _ in range(5))
            if (ns, name) not in table:
                return name

    def _commit(self, etype: str, rt: ResourceType, ns: str, name: str, obj: dict) -> bytes:
        rv = self._rv + 1
        obj = server_order(obj, builtin=self.registry.is_builtin(rt))
        obj["metadata"]["resourceVersion"] = str(rv)
        raw = encode(obj)
        if self._journal is not None:
            self._journal(rv, etype, rt.key, ns, name, raw)  # first: a change the log refuses is not applied
        table = self._data.setdefault(rt.key, {})
        old = table.get((ns, name))
        stored = None if etype == "DELETED" else _stored_form(obj, raw, old.obj if old is not None else None)
        self._rv = rv
        self._sorted.pop(rt.key, None)
        if old is not None:
            self._index_owners(rt.key, old.obj, add=False)
        if stored is None:
            table.pop((ns, name), None)
        else:
            table[(ns, name)] = _Entry(stored, raw)
            self._index_owners(rt.key, stored, add=True)
        prev_raw = old.raw if old is not None and etype == "MODIFIED" else None
        self._log.append(WatchEvent(rv, etype, rt.key, ns, name, raw, prev_raw))
        self._changed.notify_all()
        subscribers = list(self._subscribers)
        if subscribers:
            self._notify(subscribers, etype, rt, raw)
        return raw

    def _notify(self, subscribers: builtins.list[Subscriber], etype: str, rt: ResourceType, raw: bytes) -> None:
        try:
            obj = json.loads(raw)
        except RecursionError:  # nested deeper than a decode can go from here: nothing to hand out
            return
        for callback in subscribers:
            try:
                callback(etype, rt, obj)
            except Exception:  # a broken subscriber must not fail the write that notified it
                continue

    def _remove(self, rt: ResourceType, ns: str, name: str) -> None:
        entry = self._data.get(rt.key, {}).get((ns, name))
        if entry is None:
            return
        obj = dict(entry.obj)
        obj["metadata"] = dict(obj["metadata"])
        self._commit("DELETED", rt, ns, name, obj)

    def _index_owners(self, key: str, obj: dict, *, add: bool) -> None:
        meta = obj.get("metadata") or {}
        for ref in meta.get("ownerReferences") or ():
            uid = ref.get("uid")
            if not uid:
                continue
            ident = (key, meta.get("namespace", ""), meta["name"])
            if add:
                self._owned.setdefault(uid, set()).add(ident)
            else:
                deps = self._owned.get(uid)
                if deps is not None:
                    deps.discard(ident)
                    if not deps:
                        del self._owned[uid]

    def _resolve_key(self, key: str) -> ResourceType | None:
        for rt in self.registry.types():
            if rt.key == key:
                return rt
        return None

    def _delete_dependents(self, uid: str, seen: set[str] | None = None) -> None:
        """Delete what ``uid`` owns, depth first; ``seen`` stops at ownership cycles (an object
        may name itself or one of its own dependents as owner)."""
        seen = seen if seen is not None else set()
        seen.add(uid)
        for key, ns, name in sorted(self._owned.get(uid, set())):
            rt = self._resolve_key(key)
            entry = self._data.get(key, {}).get((ns, name))
            if rt is None or entry is None:
                continue
            dep_uid = entry.obj["metadata"].get("uid", "")
            if dep_uid not in seen:
                self._delete_dependents(dep_uid, seen)
            self._remove(rt, ns, name)

    def _orphan_dependents(self, uid: str) -> None:
        for key, ns, name in sorted(self._owned.get(uid, set())):
            rt = self._resolve_key(key)
            entry = self._data.get(key, {}).get((ns, name))
            if rt is None or entry is None:
                continue
            obj = json.loads(entry.raw)
            obj["metadata"]["ownerReferences"] = [r for r in obj["metadata"].get("ownerReferences", [])
                                                  if r.get("uid") != uid]
            if not obj["metadata"]["ownerReferences"]:
                del obj["metadata"]["ownerReferences"]
            self._commit("MODIFIED", rt, ns, name, obj)

    def _graceful_delete(self, ns: str, name: str, entry: _Entry, grace: int | None, *,
                         dry_run: bool) -> dict | None:
        """The pod's graceful deletion: the object to answer with while it terminates, or None
        to delete it now.

        As rest.BeforeDelete with the pod strategy's CheckGracefulDelete
        (pkg/registry/core/pod/strategy.go): the period is the request's gracePeriodSeconds,
        else the pod's terminationGracePeriodSeconds (30 when unset); a negative one counts as
        1 s; a pod not bound to a node, or already Succeeded or Failed, goes at once, as does a
        period of 0 (``kubectl delete --grace-period=0 --force``). ``deletionTimestamp`` is when
        the pod is due to be gone (now + the period). A pod already terminating keeps its
        deletion unless the request shortens the period."""
        if grace is not None and grace < 0:
            grace = 1
        obj = json.loads(entry.raw)
        meta = obj["metadata"]
        now = self.clock.now() if self.clock is not None else datetime.now(timezone.utc)
        if meta.get("deletionTimestamp"):
            old = meta.get("deletionGracePeriodSeconds")
            if old is None or grace == 0:
                return None
            if grace is None or grace >= int(old):
                return obj
            due = _parse_time(meta["deletionTimestamp"]) - timedelta(seconds=int(old)) + timedelta(seconds=grace)
        else:
            spec, status = obj.get("spec") or {}, obj.get("status") or {}
            if grace is None:
                period = spec.get("terminationGracePeriodSeconds")
                grace = period if isinstance(period, int) and not isinstance(period, bool) else 30
            if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed") or grace <= 0:
                return None
            due = now + timedelta(seconds=grace)
        meta["deletionTimestamp"] = rfc3339(due)
        meta["deletionGracePeriodSeconds"] = grace
        if dry_run:
            return obj
        return json.loads(self._commit("MODIFIED", R.POD, ns, name, obj))

    def _terminate_namespace(self, name: str, entry: _Entry) -> dict:
        """Like the namespace controller: Terminating now, contents and namespace gone shortly after."""
        if entry.obj["metadata"].get("deletionTimestamp"):
            return json.loads(entry.raw)
        obj = json.loads(entry.raw)
        obj["metadata"]["deletionTimestamp"] = self.now_text()
        obj["status"] = {"phase": "Terminating"}
        raw = self._commit("MODIFIED", R.NAMESPACE, "", name, obj)
        self._finish_namespace_later(name)
        return json.loads(raw)

    def _finish_namespace_later(self, name: str) -> None:
        timer = threading.Timer(NAMESPACE_TERMINATION_SECONDS, self._finish_namespace, args=(name,))
        timer.daemon = True
        timer.start()

    def _finish_namespace(self, name: str) -> None:
        with self.lock:
            entry = self._data.get(R.NAMESPACE.key, {}).get(("", name))
            if entry is None or not entry.obj["metadata"].get("deletionTimestamp"):
                return
            try:
                self._delete_namespace_contents(name)
                self._remove(R.NAMESPACE, "", name)
            except ApiError:  # the journal refuses writes (state no longer saved): stay Terminating
                return

    def _delete_namespace_contents(self, ns: str) -> None:
        for key in list(self._data):
            rt = self._resolve_key(key)
            if rt is None or not rt.namespaced:
                continue
            for (obj_ns, name) in [k for k in self._data[key] if k[0] == ns]:
                if (obj_ns, name) in self._data[key]:
                    self._remove(rt, obj_ns, name)


def _stored_form(obj: dict, raw: bytes, previous: dict | None) -> dict:
    """``obj`` as the store keeps it: compact, sharing unchanged parts with ``previous``.

    Parts are taken from ``previous`` when they compare equal, and ``==`` does not tell
    ``1`` from ``1.0`` or ``True``: if the result does not encode to ``raw`` exactly, it is
    rebuilt without ``previous``."""
    try:
        if previous is None:
            return compact(obj)
        stored = compact(obj, previous)
        if encode(stored) == raw:
            return stored
        return compact(obj)
    except RecursionError:  # nested deeper than the walk can go from here: keep it as decoded
        return obj


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def _plain_copy(obj: object) -> dict:
    if not isinstance(obj, dict):
        raise bad_request("the body of the request must be a JSON object")
    try:
        # allow_nan=False: NaN and Infinity (e.g. YAML .nan) are not JSON; stored, they would make every
        # list of the type unreadable to Go clients such as kubectl.
        copy = json.loads(json.dumps(obj, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise bad_request(f"the object cannot be encoded as JSON: {e}") from e
    return copy


def _meta(obj: dict, rt: ResourceType) -> dict:
    meta = obj.get("metadata")
    if meta is None:
        meta = obj["metadata"] = {}
    if not isinstance(meta, dict):
        raise bad_request(f"{rt.kind}.metadata must be an object")
    return meta


def _spec_of(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in _NON_SPEC_KEYS}


def _same(a: dict, b: dict) -> bool:
    """Equal as JSON, whatever the key order; unlike ``==``, ``1``, ``1.0`` and ``true`` differ."""
    if a != b:
        return False
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)

