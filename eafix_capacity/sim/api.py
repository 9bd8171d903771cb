"""The API server's request semantics, independent of HTTP plumbing.

``Api.handle(method, path, query, headers, body)`` returns a ``Response`` (or a streaming
one for watches). It does what kube-apiserver's generic registry does: discovery, CRUD,
list with selectors and pagination, subresources (status, scale, eviction, binding, log),
the four patch types, dry-run, field validation, Tables for kubectl, CRD registration and
metrics.k8s.io delegation to the controllers. Every failure is a ``Status`` body.
"""
from __future__ import annotations

import base64
import bisect
import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol
from urllib.parse import parse_qs

import yaml

from eafix_capacity.yamlio import LimitedSafeLoader
from eafix_capacity.sim import admission, crds, defaults, openapi, proto, resources as R, tables
from eafix_capacity.sim.controllers import rootcacertpublisher, serviceaccounts
from eafix_capacity.sim.auth import Auth, UserInfo
from eafix_capacity.sim.audit import AuditLog
from eafix_capacity.sim.apierror import ApiError, NotFoundError, bad_request, invalid
from eafix_capacity.sim.patch import (json_patch, merge_patch, record_update, server_side_apply,
                                      strategic_merge_patch)
from eafix_capacity.sim.resources import Registry, ResourceType
from eafix_capacity.sim.routing import Query, ResourcePath, parse_path, parse_query
from eafix_capacity.sim.schemas import Node, builtin_node, crd_node
from eafix_capacity.sim.selectors import matcher
from eafix_capacity.sim.store import Store, WatchEvent, encode, type_meta_prefix
from eafix_capacity.sim.validation import validate, validate_merged

MAX_BODY_BYTES = 3 * 1024 * 1024
KUBERNETES_VERSION = "v1.32.0"
_JSON = "application/json"
_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
                "application/strategic-merge-patch+json", "application/apply-patch+yaml",
                "application/apply-patch+cbor")
_PROTOBUF = "application/vnd.kubernetes.protobuf"
_BODY_TYPES = ("application/json", "application/yaml", _PROTOBUF, "*/*", "")
_WATCH_DEFAULT_TIMEOUT = 1800
_BOOKMARK_EVERY = 5.0


class Controllers(Protocol):
    def evict(self, namespace: str, name: str, body: dict) -> dict: ...
    def metrics_list(self, kind: str, namespace: str | None, name: str | None,
                     label_selector: str | None) -> dict: ...


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = _JSON
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: Iterator[bytes] | None = None


def _json_response(status: int, obj: Any, warnings: list[str] | None = None) -> Response:
    raw = obj if isinstance(obj, bytes) else encode(obj)
    # warn-text is a quoted string with " and \ escaped, as apimachinery's NewWarningHeader writes it
    headers = [("Warning", '299 - "' + w.replace("\\", "\\\\").replace('"', '\\"') + '"') for w in warnings or []]
    return Response(status, raw, headers=headers)


def error_response(err: ApiError) -> Response:
    return Response(err.code, encode(err.status()))


_NO_CONTAINERS = ("exec", "attach", "portforward")


def _no_containers(sub: str) -> ApiError:
    return ApiError(400, "BadRequest", f"pods/{sub} is not supported by the eafix sim cluster: its pods run no "
                                       "containers (exec, attach and port-forward need a real cluster)")


def _builtin_list_body(head: bytes, raws: list[bytes], prefix: bytes) -> bytes:
    """A list of a built-in type: ``head`` then the items without ``kind`` and ``apiVersion``.

    As a real kube-apiserver: its items are typed objects whose TypeMeta only the list gets
    (kubernetes/kubernetes#3030); lists of custom resources keep them in every item. A stored
    built-in object starts with ``prefix`` (``Store`` keeps TypeMeta first), so each item is
    that encoding past the prefix, sliced off (bytes, not memoryviews: those are objects the
    garbage collector tracks, and 10,000 of them per list make it walk the whole store); one
    that does not start with it is decoded and re-encoded instead."""
    if not raws:
        return head + b"]}"
    n = len(prefix)
    tails = [raw[n:] if raw.startswith(prefix) else _untyped(raw)[1:] for raw in raws]
    # Each tail lacks its opening brace: the separator supplies it, and the first and last
    # tails carry the list's head and end, so the body is joined in one copy.
    tails[0] = head + b"{" + tails[0]
    tails[-1] = tails[-1] + b"]}"
    return b",{".join(tails)


def _untyped(raw: bytes) -> bytes:
    obj = json.loads(raw)
    obj.pop("kind", None)
    obj.pop("apiVersion", None)
    return encode(obj)


def _wants_table(accept: str) -> bool:
    return "as=Table" in accept


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _no_constant(name: str) -> float:
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"cannot unmarshal number {text} into a float64: value out of range")
    return value


def _json_type(value: Any) -> str:
    """The JSON type name Go's decoder uses in its "cannot unmarshal" messages."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), "value")


class _BodyLoader(LimitedSafeLoader):
    max_depth = 1000  # libyaml's own limit; the kit's 100 is for its data files


def _decode(body: bytes, media: str) -> Any:
    if not body.strip():
        raise bad_request("the request body is empty; an object is required")
    if media == _PROTOBUF:
        return proto.decode(body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise bad_request(f"the request body is not UTF-8: {e}") from e
    try:
        if media in ("application/yaml", "application/apply-patch+yaml"):
            # the API server refuses excessive aliasing (go-yaml's check, CVE-2019-11253)
            return yaml.load(text, Loader=_BodyLoader)  # noqa: S506 (a safe loader)
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except (ValueError, yaml.YAMLError) as e:
        what = "yaml" if "yaml" in media else "json"
        raise bad_request(f"error decoding {what} body: {str(e).splitlines()[0]}") from e
    except RecursionError as e:
        raise bad_request("error decoding body: nested too deeply") from e


class Api:
    """One API server's request semantics over a ``Store``."""

    def __init__(self, store: Store, *, controllers: Controllers | None = None, auth: Auth | None = None,
                 audit: AuditLog | None = None) -> None:
        self.store = store
        self.auth = auth if auth is not None else Auth(store=store, enforce=False)
        self.audit = audit
        """kube-apiserver's ``--audit-log-path`` (sim/audit.py): one event per request, when given."""
        self.registry: Registry = store.registry
        self.controllers = controllers
        self.stopping = False
        self.scrape_counters: dict[tuple[str, str], tuple[int, int]] = {}
        """The CPU counters' running sums of the scrape endpoints (sim/scrape.py)."""

    # --- entry point ---------------------------------------------------------------------------

    def handle(self, method: str, path: str, query_text: str, headers: dict[str, str], body: bytes) -> Response:
        if self.audit is None:
            return self._admitted(method, path, query_text, headers, body)[0]
        received = self.audit.now()
        try:
            response, user = self._admitted(method, path, query_text, headers, body)
        except Exception as e:  # the server answers 500 (sim/server.py): logged as such
            self.audit.record(self.auth, method=method.upper(), path=path, query_text=query_text, headers=headers,
                              response=error_response(ApiError(500, "InternalError", f"Internal error occurred: {e!r}")),
                              user=None, received=received)
            raise
        return self.audit.record(self.auth, method=method.upper(), path=path, query_text=query_text, headers=headers,
                                 response=response, user=user, received=received)

    def _admitted(self, method: str, path: str, query_text: str, headers: dict[str, str],
                  body: bytes) -> tuple[Response, UserInfo | None]:
        user = None
        try:
            # as kube-apiserver's filters: authenticate, impersonate and authorise before routing
            user = self.auth.admit(method.upper(), path, query_text, headers) if self.auth.enforce else None
            return self._route(method.upper(), path, query_text, headers, body, user), user
        except ApiError as e:
            return error_response(e), user
        except RecursionError:
            return error_response(bad_request("the object is nested too deeply")), user

    def _route(self, method: str, path: str, query_text: str, headers: dict[str, str], body: bytes,
               user: UserInfo | None = None) -> Response:
        path = path.rstrip("/") or "/"
        fixed = self._fixed(method, path)
        if fixed is not None:
            return fixed
        if "/proxy/" in path:  # cAdvisor, kube-state-metrics: imported on the first scrape, not at start-up
            from eafix_capacity.sim import scrape

            scraped = scrape.serve(self, method, path)
            if scraped is not None:
                return Response(*scraped)
        rp = parse_path(path)
        if rp is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if rp.group == "metrics.k8s.io":
            return self._metrics(method, rp, parse_query(query_text))
        rt = self.registry.by_plural(rp.group, rp.version, rp.plural)
        if rt.namespaced is False and rp.namespace is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if rp.subresource and rp.subresource not in rt.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        q = parse_query(query_text)
        accept = headers.get("accept", "")
        if method == "POST" and (rp.subresource == "token" or (user is not None and rt in R.REVIEW_TYPES)):
            media = _media_type(headers.get("content-type", ""))
            self._check_media(media, _BODY_TYPES)
            obj = _decode(body, media)
            if rp.subresource == "token":
                return _json_response(201, self.auth.token_request(rp, obj, dry_run=q.dry_run))
            assert user is not None
            return _json_response(201, self.auth.review(rt, self._check_identity(obj, rt, rp, expect_name=False),
                                                        user))
        if method == "GET":
            if rp.name is None:
                return self._watch(rt, rp, q, accept) if q.watch else self._list(rt, rp, q, accept)
            return self._get(rt, rp, q, accept, query_text)
        if method in ("POST", "PUT", "PATCH"):
            media = _media_type(headers.get("content-type", ""))
            return self._write(method, rt, rp, q, media, body, headers)
        if method == "DELETE":
            return self._delete(rt, rp, q, body, headers)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _fixed(self, method: str, path: str) -> Response | None:
        if path in ("/healthz", "/readyz", "/livez") or path.startswith(("/healthz/", "/readyz/", "/livez/")):
            return Response(200, b"ok", "text/plain; charset=utf-8")
        if path == "/version":
            return _json_response(200, {"major": "1", "minor": "32", "gitVersion": KUBERNETES_VERSION,
                                        "gitCommit": "eafix-sim", "gitTreeState": "clean",
                                        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23",
                                        "compiler": "gc", "platform": "linux/amd64"})
        if path == "/api":
            return _json_response(200, self.registry.core_versions())
        if path == "/apis":
            return _json_response(200, self.registry.api_group_list())
        if path == "/api/v1":
            return _json_response(200, self.registry.api_resource_list("", "v1"))
        parts = path.strip("/").split("/")
        if parts[0] == "apis" and len(parts) == 2:
            return _json_response(200, self.registry.api_group(parts[1]))
        if parts[0] == "apis" and len(parts) == 3:
            return _json_response(200, self.registry.api_resource_list(parts[1], parts[2]))
        if path == "/openapi/v2":
            return Response(200, openapi.V2_PROTOBUF, openapi.V2_PROTOBUF_MEDIA)
        if path == "/openapi/v3":
            return _json_response(200, openapi.root(self.registry))
        if path.startswith("/openapi/v3/"):
            rest = path[len("/openapi/v3/"):].split("/")
            group, version = ("", rest[1]) if rest[0] == "api" and len(rest) == 2 else (
                (rest[1], rest[2]) if rest[0] == "apis" and len(rest) == 3 else ("", ""))
            doc = openapi.group_version(self.registry, group, version) if version else None
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json_response(200, doc)
        if parts[0] in ("openapi", "metrics", "logs", "debug"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if method != "GET" and path in ("/", "/api", "/apis"):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        return None

    # --- reads -----------------------------------------------------------------------------------

    def _get(self, rt: ResourceType, rp: ResourcePath, q: Query, accept: str, query_text: str) -> Response:
        assert rp.name is not None
        if rp.subresource in _NO_CONTAINERS:
            raise _no_containers(rp.subresource)
        if rp.subresource == "scale":
            return _json_response(200, self._scale_of(rt, self.store.get(rt, rp.namespace, rp.name)))
        if rp.subresource == "log":
            return self._log(rt, rp, query_text)
        if rp.subresource not in (None, "status"):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        raw = self.store.get_raw(rt, rp.namespace, rp.name)
        if _wants_table(accept):
            obj = json.loads(raw)
            return _json_response(200, self._table(rt, [obj], obj["metadata"].get("resourceVersion", ""), q))
        return _json_response(200, raw)

    def _log(self, rt: ResourceType, rp: ResourcePath, query_text: str) -> Response:
        """No process runs in a sim pod; the log says so, after kubectl's container checks."""
        assert rp.name is not None
        pod = self.store.get(rt, rp.namespace, rp.name)
        names = [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []]
        wanted = parse_qs(query_text).get("container", [""])[-1]
        if not wanted:
            if len(names) != 1:
                raise bad_request(f"a container name must be specified for pod {rp.name}, choose one of: "
                                  f"[{' '.join(names)}]")
            wanted = names[0]
        if wanted not in names:
            raise bad_request(f"container {wanted} is not valid for pod {rp.name}")
        text = f"[eafix sim] {rp.namespace}/{rp.name} container {wanted}: simulated, no process, no log output\n"
        return Response(200, text.encode(), "text/plain")

    def _table(self, rt: ResourceType, objs: list[dict], rv: str, q: Query, cont: str = "") -> dict:
        custom = None
        if not self.registry.is_builtin(rt):
            crd = self._crd_for(rt)
            custom = crds.printer_columns(crd, rt.version) if crd else None
        clock = getattr(self.store, "clock", None)
        return tables.table(rt.kind, objs, resource_version=rv, include_object=q.include_object,
                            custom_columns=custom, continue_token=cont,
                            now=clock.now().timestamp() if clock is not None else None)

    def _crd_for(self, rt: ResourceType) -> dict | None:
        try:
            return self.store.get(R.CRD, None, f"{rt.plural}.{rt.group}")
        except ApiError:
            return None

    def _list(self, rt: ResourceType, rp: ResourcePath, q: Query, accept: str) -> Response:
        if "list" not in rt.verbs:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        objs, raws, rv = self.store.list_objects(rt, rp.namespace, label_selector=q.label_selector,
                                                 field_selector=q.field_selector)
        start = 0
        if q.continue_token:
            after, rv = self._decode_continue(q.continue_token, rt)
            start = bisect.bisect_right(objs, after,
                                        key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        # Tables (kubectl get) are served whole: the API lets a server ignore ``limit``, and kubectl's
        # client-side rate limit (5 requests/s after a burst of 10) would otherwise dominate large lists.
        limit = 0 if _wants_table(accept) else q.limit
        end = len(objs) if not limit else min(len(objs), start + limit)
        cont = ""
        remaining = None
        if end < len(objs):
            last = objs[end - 1]["metadata"]
            token = {"rv": rv, "after": [last.get("namespace", ""), last["name"]], "key": rt.key}
            cont = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
            remaining = len(objs) - end
        if _wants_table(accept):
            return _json_response(200, self._table(rt, objs[start:end], rv, q, cont))
        meta = f'"resourceVersion":"{rv}"'
        if cont:
            meta += f',"continue":"{cont}","remainingItemCount":{remaining}'
        head = f'{{"kind":"{rt.list_kind}","apiVersion":"{rt.api_version}","metadata":{{{meta}}},"items":['.encode()
        page = raws[start:end]
        if not self.registry.is_builtin(rt):
            return _json_response(200, head + b",".join(page) + b"]}")
        return _json_response(200, _builtin_list_body(head, page, type_meta_prefix(rt.kind, rt.api_version)))

    def _decode_continue(self, token: str, rt: ResourceType) -> tuple[tuple[str, str], str]:
        """The (namespace, name) a page ended at: the next page resumes after it, stable under changes."""
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode() + b"==="))
            if not isinstance(data, dict) or data.get("key") != rt.key:
                raise ValueError("continue token is for another resource")
            after = data["after"]
            if not (isinstance(after, list) and len(after) == 2 and all(isinstance(a, str) for a in after)):
                raise ValueError("malformed position")
            return (after[0], after[1]), str(data["rv"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            raise bad_request(f"continue key is not valid: {e}") from e

    def _watch(self, rt: ResourceType, rp: ResourcePath, q: Query, accept: str) -> Response:
        match = matcher(q.label_selector, q.field_selector, rt.kind) if (q.label_selector or q.field_selector) else None
        as_table = _wants_table(accept)
        rv_text = q.resource_version
        try:
            since = int(rv_text) if rv_text not in ("", "0") else None
        except ValueError:
            raise bad_request(f'resourceVersion: invalid value "{rv_text}"') from None
        if since is not None:
            self.store.events_since(since, rt)  # raises 410 Gone now rather than mid-stream
        timeout = q.timeout_seconds if q.timeout_seconds is not None else _WATCH_DEFAULT_TIMEOUT
        return Response(200, content_type=_JSON, stream=self._watch_stream(rt, rp, q, match, as_table, since,
                                                                          timeout))

    def _frame(self, etype: str, rt: ResourceType, obj: dict | None, raw: bytes | None, as_table: bool,
               q: Query) -> bytes:
        if as_table and obj is not None and etype != "BOOKMARK":
            raw = encode(self._table(rt, [obj], obj["metadata"].get("resourceVersion", ""), q))
        return b'{"type":"' + etype.encode() + b'","object":' + (raw or b"{}") + b"}\n"

    def _watch_stream(self, rt: ResourceType, rp: ResourcePath, q: Query, match: Any, as_table: bool,
                      since: int | None, timeout: float) -> Iterator[bytes]:
        deadline = time.monotonic() + timeout
        if since is None:
            objs, raws, rv = self.store.list_objects(rt, rp.namespace, label_selector=q.label_selector,
                                                     field_selector=q.field_selector)
            for obj, raw in zip(objs, raws):
                if rp.name is None or obj["metadata"].get("name") == rp.name:
                    yield self._frame("ADDED", rt, obj, raw, as_table, q)
            since = int(rv)
            if q.send_initial_events and q.allow_bookmarks:
                yield self._bookmark(rt, since, initial_end=True)
        last_sent = time.monotonic()
        while not self.stopping and not self.store.closed:
            now = time.monotonic()
            if now >= deadline:
                return
            try:
                events = self.store.events_since(since, rt)
            except ApiError as e:
                yield b'{"type":"ERROR","object":' + encode(e.status()) + b"}\n"
                return
            sent = False
            for ev in events:
                since = ev.rv
                if rp.namespace and ev.namespace != rp.namespace:
                    continue
                if rp.name is not None and ev.name != rp.name:
                    continue
                frame = self._filtered(ev, rt, match, as_table, q)
                if frame is not None:
                    yield frame
                    sent = True
                    last_sent = time.monotonic()
            if events:
                since = max(since, events[-1].rv)
            if q.allow_bookmarks and time.monotonic() - last_sent > _BOOKMARK_EVERY:
                yield self._bookmark(rt, self.store.resource_version, initial_end=False)
                sent = True
                last_sent = time.monotonic()
            if not sent:
                yield b""  # nothing to send: lets the server notice a client that has gone away
            self.store.wait_for_change(since, min(1.0, max(0.01, deadline - time.monotonic())))

    def _filtered(self, ev: WatchEvent, rt: ResourceType, match: Any, as_table: bool, q: Query) -> bytes | None:
        """The frame a selector-filtered watch sends: objects entering the selection are ADDED, leaving DELETED."""
        if match is None:
            return self._frame(ev.type, rt, ev.obj if as_table else None, ev.raw, as_table, q)
        obj = ev.obj
        now = match(obj)
        prev = ev.prev
        before = match(prev) if prev is not None else now
        if ev.type == "MODIFIED" and now != before:
            return self._frame("ADDED" if now else "DELETED", rt, obj, ev.raw, as_table, q)
        return self._frame(ev.type, rt, obj, ev.raw, as_table, q) if now else None

    def _bookmark(self, rt: ResourceType, rv: int, *, initial_end: bool) -> bytes:
        meta: dict = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return self._frame("BOOKMARK", rt, None, encode({"kind": rt.kind, "apiVersion": rt.api_version,
                                                         "metadata": meta}), False, Query())

    # --- writes ----------------------------------------------------------------------------------

    def _node(self, rt: ResourceType) -> Node:
        schema = self.registry.crd_schema(rt)
        if schema is not None:
            return crd_node(schema)
        return builtin_node(rt.api_version, rt.kind) or Node({}, None)

    def _manager(self, q: Query, headers: dict[str, str], default: str) -> str:
        if q.field_manager is not None:
            if not q.field_manager or len(q.field_manager) > 128:
                raise bad_request("fieldManager: Invalid value: must be between 1 and 128 characters long")
            return q.field_manager
        agent = headers.get("user-agent", "")
        return agent.split("/", 1)[0] or default

    def _check_identity(self, obj: Any, rt: ResourceType, rp: ResourcePath, *, expect_name: bool) -> dict:
        if not isinstance(obj, dict):
            raise bad_request(f"the body of the request was in an unknown format: expected a {rt.kind} object, "
                              f"got {type(obj).__name__}")
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if api_version is not None and api_version != rt.api_version:
            raise bad_request(f"the API version in the data ({api_version}) does not match the expected API "
                              f"version ({rt.api_version})")
        if kind is not None and kind != rt.kind:
            raise bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request(f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                              "json: cannot unmarshal into Go struct field .metadata of type v1.ObjectMeta")
        ns = meta.get("namespace")
        if rt.namespaced and rp.namespace and ns and ns != rp.namespace:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the "
                              "request")
        if rt.namespaced and rp.namespace:
            meta["namespace"] = rp.namespace
        if expect_name and rp.name and meta.get("name") and meta["name"] != rp.name:
            raise bad_request("the name of the object does not match the name on the URL")
        if expect_name and rp.name:
            meta["name"] = rp.name
        return obj

    def _write(self, method: str, rt: ResourceType, rp: ResourcePath, q: Query, media: str, body: bytes,
               headers: dict[str, str]) -> Response:
        if method == "POST":
            if rp.subresource in _NO_CONTAINERS:
                raise _no_containers(rp.subresource)
            if rp.subresource in ("eviction", "binding"):
                return self._pod_action(rt, rp, media, body)
            if rp.name is not None:
                raise ApiError(405, "MethodNotAllowed",
                               "the server does not allow this method on the requested resource")
            if "create" not in rt.verbs:
                raise ApiError(405, "MethodNotAllowed",
                               "the server does not allow this method on the requested resource")
            self._check_media(media, _BODY_TYPES)
            obj = self._check_identity(_decode(body, media), rt, rp, expect_name=False)
            if rt in R.REVIEW_TYPES:
                return self._review(rt, obj)
            return self._create(rt, obj, q, headers)
        if rp.name is None or "update" not in rt.verbs:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if method == "PUT":
            self._check_media(media, _BODY_TYPES)
            obj = _decode(body, media)
            if rp.subresource == "scale":
                return self._put_scale(rt, rp, obj, q, self._manager(q, headers, "unknown"))
            obj = self._check_identity(obj, rt, rp, expect_name=True)
            return self._update(rt, rp, obj, q, headers, manager_default="unknown")
        self._check_media(media, _PATCH_TYPES)
        if media == "application/apply-patch+cbor":
            raise ApiError(415, "UnsupportedMediaType", 'the body of the request was in an unknown format - accepted '
                                                        'media types include: application/apply-patch+yaml')
        patch = _decode(body, media)
        with self.store.lock:  # read-modify-write without a resourceVersion must not race the controllers
            return self._patch(rt, rp, q, media, patch, headers)

    def _check_media(self, media: str, allowed: tuple[str, ...]) -> None:
        if media not in allowed:
            shown = ", ".join(a for a in allowed if a not in ("", "*/*"))
            raise ApiError(415, "UnsupportedMediaType",
                           f'the body of the request was in an unknown format - accepted media types include: {shown}')

    def _validated(self, rt: ResourceType, obj: dict, q: Query, *, defaulting: bool = True,
                   partial: bool = False, old: dict | None = None) -> tuple[dict, list[str]]:
        # Without fieldValidation a real server warns (Warn); an apply configuration naming a field the
        # schema lacks is refused whatever the parameter says (SSA's "field not declared in schema").
        mode = q.field_validation or ("Strict" if partial else "Warn")
        out = validate(obj, rt, self.registry, mode=mode, partial=partial, old=old)
        if rt == R.CRD:
            self._check_crd(out.obj)
        if defaulting and self.registry.is_builtin(rt):
            defaults.apply_defaults(out.obj, rt.group, rt.kind)
        return out.obj, out.warnings

    def _service_ip(self, obj: dict, old: dict | None) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        if old is not None:
            for key in ("clusterIP", "clusterIPs"):
                if key not in spec and key in (old.get("spec") or {}):
                    spec[key] = old["spec"][key]
        services, _, _ = self.store.list_objects(R.SERVICE)
        used = {str((s.get("spec") or {}).get("clusterIP")) for s in services}
        me = ((obj.get("metadata") or {}).get("namespace"), (obj.get("metadata") or {}).get("name"))
        used_ports = {p.get("nodePort") for s in services
                      if (s["metadata"].get("namespace"), s["metadata"]["name"]) != me
                      for p in (s.get("spec") or {}).get("ports") or [] if isinstance(p, dict)}
        defaults.allocate_ip(obj, used, seed=len(services) + 1, used_ports=used_ports)

    def _allocating(self, rt: ResourceType) -> Any:
        """The store lock for Services: allocating an IP or node port and storing it must not interleave."""
        return self.store.lock if rt == R.SERVICE else contextlib.nullcontext()

    def _check_crd(self, crd: dict) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        want = f"{names.get('plural', '')}.{spec.get('group', '')}"
        name = (crd.get("metadata") or {}).get("name", "")
        causes = []
        if name != want:
            causes.append({"reason": "FieldValueInvalid", "field": "metadata.name",
                           "message": f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group'})
        versions = [v for v in spec.get("versions") or [] if isinstance(v, dict)]
        if not versions:
            causes.append({"reason": "FieldValueRequired", "field": "spec.versions", "message": "Required value"})
        elif sum(1 for v in versions if v.get("storage")) != 1:
            causes.append({"reason": "FieldValueInvalid", "field": "spec.versions",
                           "message": "Invalid value: must have exactly one version marked as storage version"})
        if causes:
            raise invalid("CustomResourceDefinition", "apiextensions.k8s.io", name, causes)

    def _create(self, rt: ResourceType, obj: dict, q: Query, headers: dict[str, str]) -> Response:
        obj, warnings = self._validated(rt, obj, q)
        self.auth.check_rbac_write(rt, obj)
        with self.store.lock:  # admission's quota charge and the write are one step
            admitted = admission.admit(self.store, rt, obj, operation="CREATE")
            obj = admitted.obj
            if self.registry.is_builtin(rt):
                defaults.initial_status(obj, rt.group, rt.kind)  # PrepareForCreate: after mutating admission
            if rt == R.SERVICE:
                self._service_ip(obj, None)
            obj.get("metadata", {}).pop("managedFields", None)
            record_update(None, obj, self._node(rt), manager=self._manager(q, headers, "unknown"))
            raw = self.store.create_raw(rt, obj, dry_run=q.dry_run)
            admission.charge(self.store, admitted, dry_run=q.dry_run)
        self._after_write(rt, raw, dry_run=q.dry_run)
        if rt == R.CRD and not q.dry_run:
            raw = self._establish(json.loads(raw))
        return _json_response(201, raw, warnings)

    def _after_write(self, rt: ResourceType, raw: bytes, *, dry_run: bool) -> None:
        """What the control plane does at once after some writes. A new namespace gets its
        ``default`` ServiceAccount and ``kube-root-ca.crt`` (the controllers add them within
        moments, and ServiceAccount admission retries its lookup of ``default`` meanwhile); a new or
        changed ResourceQuota is recounted (the resourcequota controller's first sync)."""
        if dry_run or rt not in (R.NAMESPACE, R.RESOURCEQUOTA):
            return
        meta = json.loads(raw)["metadata"]
        if rt == R.NAMESPACE:
            serviceaccounts.ensure(self.store, meta["name"])
            rootcacertpublisher.ensure(self.store, meta["name"])
        else:
            admission.refresh_quota(self.store, meta.get("namespace") or "default", meta["name"])

    def _establish(self, crd: dict) -> bytes:
        crds.register(self.registry, crd)
        crd["status"] = crds.established_status(crd)
        return self.store.update_raw(R.CRD, crd, subresource="status")

    def _update(self, rt: ResourceType, rp: ResourcePath, obj: dict, q: Query, headers: dict[str, str], *,
                manager_default: str) -> Response:
        with self._allocating(rt):
            return self._update_locked(rt, rp, obj, q, headers, manager_default=manager_default)

    def _update_locked(self, rt: ResourceType, rp: ResourcePath, obj: dict, q: Query, headers: dict[str, str], *,
                       manager_default: str) -> Response:
        assert rp.name is not None
        old = self.store.get(rt, rp.namespace, rp.name)
        obj, warnings = self._validated(rt, obj, q, old=old if rp.subresource is None else None)
        self.auth.check_rbac_write(rt, obj)
        if rt == R.SERVICE:
            self._service_ip(obj, old)
        meta = obj["metadata"]
        old_fields = old["metadata"].get("managedFields", [])
        if rp.subresource is None and "managedFields" in meta and meta["managedFields"] != old_fields:
            pass  # the client rewrote managedFields (kubectl's client-side -> server-side apply migration): keep them
        else:
            if rp.subresource is None:
                meta["managedFields"] = old_fields
            record_update(old, obj, self._node(rt), manager=self._manager(q, headers, manager_default),
                          subresource=rp.subresource)
        with self.store.lock:
            admitted = admission.admit(self.store, rt, obj, operation="UPDATE", old=old, subresource=rp.subresource)
            raw = self.store.update_raw(rt, admitted.obj, subresource=rp.subresource, dry_run=q.dry_run)
            admission.charge(self.store, admitted, dry_run=q.dry_run)
        if rp.subresource is None:
            self._after_write(rt, raw, dry_run=q.dry_run)
        if rt == R.CRD and not q.dry_run and rp.subresource is None:
            crds.unregister(self.registry, old)
            raw = self._establish(json.loads(raw))
        return _json_response(200, raw, warnings)

    def _patch(self, rt: ResourceType, rp: ResourcePath, q: Query, media: str, patch: Any,
               headers: dict[str, str]) -> Response:
        assert rp.name is not None
        node = self._node(rt)
        if media == "application/apply-patch+yaml":
            return self._apply(rt, rp, q, patch, node)
        if rp.subresource == "scale":
            current = self._scale_of(rt, self.store.get(rt, rp.namespace, rp.name))
            return self._put_scale(rt, rp, self._apply_patch(media, current, patch, node=None, rt=rt), q,
                                   self._manager(q, headers, "unknown"))
        live = self.store.get(rt, rp.namespace, rp.name)
        new = self._apply_patch(media, live, patch, node, rt)
        if not isinstance(new, dict):
            raise bad_request("the patch produced something that is not an object")
        new = self._check_identity(new, rt, rp, expect_name=True)
        new.setdefault("metadata", {})["resourceVersion"] = (new.get("metadata") or {}).get(
            "resourceVersion") or live["metadata"]["resourceVersion"]
        return self._update(rt, rp, new, q, headers, manager_default="unknown")

    def _apply_patch(self, media: str, live: dict, patch: Any, node: Node | None, rt: ResourceType) -> Any:
        if media == "application/json-patch+json":
            return json_patch(live, patch)
        if not isinstance(patch, dict):
            raise bad_request("the patch must be a JSON object")
        if media == "application/merge-patch+json":
            return merge_patch(live, patch)
        if not self.registry.is_builtin(rt):
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted "
                                                        "media types include: application/json-patch+json, "
                                                        "application/merge-patch+json, application/apply-patch+yaml")
        result = strategic_merge_patch(live, patch, node or Node({}, None))
        if result is None:
            raise bad_request("the patch deleted the whole object")
        return result

    def _apply(self, rt: ResourceType, rp: ResourcePath, q: Query, applied: Any, node: Node) -> Response:
        assert rp.name is not None
        if q.field_manager is None:
            raise bad_request("PATCH, application/apply-patch+yaml requires fieldManager parameter")
        manager = self._manager(q, {}, "unknown")
        applied = self._check_identity(applied, rt, rp, expect_name=True)
        if not applied.get("apiVersion") or not applied.get("kind"):
            raise bad_request("invalid object type: the applied configuration must set apiVersion and kind")
        if "managedFields" in applied.get("metadata", {}):
            raise bad_request("metadata.managedFields must be nil")
        applied, warnings = self._validated(rt, applied, q, defaulting=False, partial=True)
        try:
            live = self.store.get(rt, rp.namespace, rp.name)
        except NotFoundError:
            live = None
        result = server_side_apply(live, applied, node, manager=manager, force=q.force)
        self.auth.check_rbac_write(rt, result)
        validate_merged(result, rt, self.registry, old=live)  # the merged object must be a valid whole
        if self.registry.is_builtin(rt):
            defaults.apply_defaults(result, rt.group, rt.kind)
        if rt == R.SERVICE:
            self._service_ip(result, live)
        if live is None:
            if rp.subresource:
                raise ApiError(404, "NotFound", f'{rt.plural} "{rp.name}" not found')
            self.auth.check_apply_create(rt, rp)
            admitted = admission.admit(self.store, rt, result, operation="CREATE")
            if self.registry.is_builtin(rt):
                defaults.initial_status(admitted.obj, rt.group, rt.kind)
            raw = self.store.create_raw(rt, admitted.obj, dry_run=q.dry_run)
            admission.charge(self.store, admitted, dry_run=q.dry_run)
            self._after_write(rt, raw, dry_run=q.dry_run)
            if rt == R.CRD and not q.dry_run:
                raw = self._establish(json.loads(raw))
            return _json_response(201, raw, warnings)
        want_rv = (applied.get("metadata") or {}).get("resourceVersion")
        result["metadata"]["resourceVersion"] = want_rv or live["metadata"]["resourceVersion"]
        admitted = admission.admit(self.store, rt, result, operation="UPDATE", old=live, subresource=rp.subresource)
        raw = self.store.update_raw(rt, admitted.obj, subresource=rp.subresource, dry_run=q.dry_run)
        admission.charge(self.store, admitted, dry_run=q.dry_run)
        if rp.subresource is None:
            self._after_write(rt, raw, dry_run=q.dry_run)
        if rt == R.CRD and not q.dry_run and rp.subresource is None:
            crds.unregister(self.registry, live)
            raw = self._establish(json.loads(raw))
        return _json_response(200, raw, warnings)

    def _review(self, rt: ResourceType, obj: dict) -> Response:
        """Access reviews: the sim has no authorization, so every user may do everything."""
        obj = dict(obj, apiVersion=rt.api_version, kind=rt.kind)
        if rt == R.SELF_SUBJECT_ACCESS_REVIEW:
            obj["status"] = {"allowed": True, "reason": "the eafix sim cluster authorizes every request"}
        elif rt == R.SELF_SUBJECT_RULES_REVIEW:
            obj["status"] = {"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                             "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}], "incomplete": False}
        else:
            obj["status"] = {"userInfo": {"username": "eafix-sim-user", "groups": ["system:masters",
                                                                                  "system:authenticated"]}}
        return _json_response(201, obj)

    # --- scale, eviction, binding ----------------------------------------------------------------

    def _scale_of(self, rt: ResourceType, obj: dict) -> dict:
        meta = obj["metadata"]
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        sel = (spec.get("selector") or {}).get("matchLabels") or {}
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                             if k in meta},
                "spec": {"replicas": spec.get("replicas", 1)},
                "status": {"replicas": status.get("replicas", 0),
                           "selector": ",".join(f"{k}={v}" for k, v in sorted(sel.items()))}}

    def _put_scale(self, rt: ResourceType, rp: ResourcePath, scale: Any, q: Query, manager: str) -> Response:
        assert rp.name is not None
        if not isinstance(scale, dict):
            raise bad_request("the body must be an autoscaling/v1 Scale object")
        for key, go_type in (("metadata", "v1.ObjectMeta"), ("spec", "v1.ScaleSpec")):
            if scale.get(key) is not None and not isinstance(scale[key], dict):
                raise bad_request(f'Scale in version "v1" cannot be handled as a Scale: json: cannot unmarshal '
                                  f"{_json_type(scale[key])} into Go struct field Scale.{key} of type {go_type}")
        replicas = (scale.get("spec") or {}).get("replicas", 0)
        if isinstance(replicas, int) and replicas > 2**31 - 1:
            raise bad_request(f'Scale in version "v1" cannot be handled as a Scale: json: cannot unmarshal number '
                              f"{replicas} into Go struct field ScaleSpec.spec.replicas of type int32")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise invalid("Scale", "autoscaling", rp.name, [{"reason": "FieldValueInvalid", "field": "spec.replicas",
                                                             "message": f"Invalid value: {replicas!r}: must be greater "
                                                                        "than or equal to 0"}])
        with self.store.lock:
            return self._write_scale(rt, rp, replicas, scale, q, manager)

    def _write_scale(self, rt: ResourceType, rp: ResourcePath, replicas: int, scale: dict, q: Query,
                     manager: str) -> Response:
        assert rp.name is not None
        obj = self.store.get(rt, rp.namespace, rp.name)
        want_rv = (scale.get("metadata") or {}).get("resourceVersion")
        if want_rv:
            obj["metadata"]["resourceVersion"] = want_rv
        old = json.loads(json.dumps(obj))
        obj.setdefault("spec", {})["replicas"] = replicas
        record_update(old, obj, self._node(rt), manager=manager, subresource="scale")
        raw = self.store.update_raw(rt, obj, dry_run=q.dry_run)
        return _json_response(200, self._scale_of(rt, json.loads(raw)))

    def _pod_action(self, rt: ResourceType, rp: ResourcePath, media: str, body: bytes) -> Response:
        assert rp.name is not None
        self._check_media(media, _BODY_TYPES)
        obj = _decode(body, media)
        if not isinstance(obj, dict):
            raise bad_request("the body must be an object")
        pod = self.store.get(rt, rp.namespace, rp.name)
        if rp.subresource == "eviction":
            if self.controllers is not None:
                result = self.controllers.evict(rp.namespace or "default", rp.name, obj)
            else:
                self.store.delete(rt, rp.namespace, rp.name)
                result = {}
            status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
            return _json_response(201, result if result.get("kind") == "Status" else status)
        target = (obj.get("target") or {}).get("name")
        if not target:
            raise invalid("Binding", "", rp.name, [{"reason": "FieldValueRequired", "field": "target.name",
                                                    "message": "Required value"}])
        if pod.get("spec", {}).get("nodeName"):
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on pods/binding "{rp.name}": pod '
                                            f'{rp.name} is already assigned to node "{pod["spec"]["nodeName"]}"')
        pod["spec"]["nodeName"] = target
        self.store.update_raw(rt, pod)
        return _json_response(201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                    "code": 201})

    # --- delete ----------------------------------------------------------------------------------

    def _delete(self, rt: ResourceType, rp: ResourcePath, q: Query, body: bytes,
                headers: dict[str, str]) -> Response:
        if "delete" not in rt.verbs or rp.subresource:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        propagation, preconditions, dry_run = q.propagation, None, q.dry_run
        grace = q.grace_period_seconds
        if body.strip():
            opts = _decode(body, _media_type(headers.get("content-type", "")) or _JSON)
            if not isinstance(opts, dict):
                raise bad_request("the body of a DELETE must be a DeleteOptions object")
            propagation = opts.get("propagationPolicy") or propagation
            if propagation not in ("Orphan", "Background", "Foreground"):
                raise bad_request(f'propagationPolicy: Unsupported value: "{propagation}"')
            if opts.get("orphanDependents") is True:
                propagation = "Orphan"
            preconditions = opts.get("preconditions") if isinstance(opts.get("preconditions"), dict) else None
            dry_run = dry_run or opts.get("dryRun") == ["All"]
            if opts.get("gracePeriodSeconds") is not None:
                if not isinstance(opts["gracePeriodSeconds"], int) or isinstance(opts["gracePeriodSeconds"], bool):
                    raise bad_request("the body of a DELETE must be a DeleteOptions object: gracePeriodSeconds "
                                      "must be an integer")
                grace = opts["gracePeriodSeconds"]
        if rp.name is None:
            deleted = self.store.delete_collection(rt, rp.namespace, label_selector=q.label_selector,
                                                   field_selector=q.field_selector, dry_run=dry_run)
            if rt == R.CRD and not dry_run:
                for crd in deleted:
                    self._drop_crd(crd)
            if self.registry.is_builtin(rt):  # the deleted items are a list like any other (see _builtin_list_body)
                deleted = [{k: v for k, v in obj.items() if k not in ("kind", "apiVersion")} for obj in deleted]
            return _json_response(200, {"kind": rt.list_kind, "apiVersion": rt.api_version,
                                        "metadata": {"resourceVersion": str(self.store.resource_version)},
                                        "items": deleted})
        obj = self.store.delete(rt, rp.namespace, rp.name, dry_run=dry_run, propagation=propagation,
                                preconditions=preconditions, grace_period_seconds=grace)
        if rt == R.CRD and not dry_run:
            self._drop_crd(obj)
        return _json_response(200, obj)

    def _drop_crd(self, crd: dict) -> None:
        for rt in crds.unregister(self.registry, crd):
            self.store.delete_collection(rt, None)

    # --- metrics.k8s.io --------------------------------------------------------------------------

    def _metrics(self, method: str, rp: ResourcePath, q: Query) -> Response:
        rt = self.registry.by_plural(rp.group, rp.version, rp.plural)
        if method != "GET" or rp.subresource:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if self.controllers is None:
            raise ApiError(503, "ServiceUnavailable", "the server is currently unable to handle the request "
                                                      "(no metrics source)")
        body = self.controllers.metrics_list(rt.kind, rp.namespace, rp.name, q.label_selector)
        return _json_response(200, body)
