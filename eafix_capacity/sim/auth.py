"""Authentication and RBAC authorisation for ``sim up --auth``, as kube-apiserver does them.

Without ``--auth`` the sim accepts any request (the default stays simple). With it, each
request passes the real server's filter chain in its order: authentication (static bearer
tokens, as ``--token-auth-file``, and ServiceAccount tokens from the TokenRequest API),
impersonation (``Impersonate-*`` headers, each needing the ``impersonate`` verb), then
authorisation (the ``system:masters`` group, then RBAC over the Roles, ClusterRoles and
bindings in the store). Refusals carry the real codes and messages: 401 ``Unauthorized``,
403 ``pods is forbidden: User "x" cannot list resource "pods" in API group "" in the
namespace "y"``. The controllers write to the store directly and are never checked, as the
control plane's own components hold cluster-admin-like roles on a real cluster.

The rule evaluation (``request_attributes``, ``rule_allows``, ``forbidden``, the bootstrap
policy) is pure; ``Auth`` holds the token tables and reads RBAC objects from the store.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator, Mapping
from urllib.parse import parse_qs, unquote

from eafix_capacity.errors import InputError
from eafix_capacity.sim import resources as R
from eafix_capacity.sim.apierror import ApiError, bad_request, invalid
from eafix_capacity.sim.routing import ResourcePath

ADMIN_USER = "kubernetes-admin"
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
SA_PREFIX = "system:serviceaccount:"
SA_GROUP = "system:serviceaccounts"
# kind's --api-audiences / --service-account-issuer.
API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
# The AuthenticationConfiguration of KEP-4633 (kube-apiserver 1.32): anonymous requests only on
# the health endpoints; anything else without credentials is 401.
ANONYMOUS_PATHS = ("/healthz", "/livez", "/readyz")
_DEFAULT_TOKEN_SECONDS = 3600  # pkg/apis/authentication/v1 defaults: ExpirationSeconds = 1h
_MIN_TOKEN_SECONDS = 600  # pkg/apis/authentication/validation MinTokenAgeSec
_CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"
_RBAC = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class UserInfo:
    """k8s.io/apiserver user.Info."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def as_json(self) -> dict:
        """authentication.k8s.io/v1 UserInfo."""
        out: dict[str, Any] = {"username": self.name}
        if self.uid:
            out["uid"] = self.uid
        if self.groups:
            out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out


@dataclass(frozen=True)
class Attributes:
    """authorizer.AttributesRecord: what one request asks to do."""

    user: UserInfo
    verb: str
    resource_request: bool
    path: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


def unauthorized() -> ApiError:
    """apierrors.NewUnauthorized("Unauthorized"), what the authentication filter answers."""
    return ApiError(401, "Unauthorized", "Unauthorized")


# --- request attributes -------------------------------------------------------------------------

def request_attributes(method: str, path: str, query_text: str, user: UserInfo) -> Attributes:
    """The attributes of a request, as apiserver's RequestInfoFactory.NewRequestInfo derives them."""
    parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
    plain = Attributes(user=user, verb=method.lower(), resource_request=False, path=path)
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return plain
    rest = parts[1:]
    group = ""
    if parts[0] == "apis":
        if len(rest) < 3:
            return plain
        group, rest = rest[0], rest[1:]
    version, rest = rest[0], rest[1:]
    verb = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch",
            "DELETE": "delete"}.get(method.upper(), "")
    if rest[0] in ("proxy", "watch") and len(rest) >= 2:  # the deprecated /watch/ and /proxy/ prefixes
        verb, rest = rest[0], rest[1:]
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in ("status", "finalize"):
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else ""
    subresource = rest[2] if len(rest) >= 3 and verb != "proxy" else ""
    if not name and verb == "get":
        query = parse_qs(query_text, keep_blank_values=True)
        watch = (query.get("watch") or ["false"])[0].lower() not in ("false", "0", "")
        verb = "watch" if watch else "list"
        name = _exact_name(query.get("fieldSelector", [""])[0])
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(user=user, verb=verb, resource_request=True, path=path, api_group=group, api_version=version,
                      namespace=namespace, resource=resource, subresource=subresource, name=name)


def _exact_name(selector: str) -> str:
    """The name a ``metadata.name=`` field selector requires (list and watch by name are authorised by name)."""
    for term in (t.strip() for t in selector.split(",") if t.strip()):
        for op in ("==", "="):
            key, sep, value = term.partition(op)
            if sep and key.strip() == "metadata.name" and not value.startswith("="):
                value = value.strip()
                return value if value and value not in (".", "..") and "/" not in value and "%" not in value else ""
    return ""


def forbidden(attrs: Attributes, reason: str = "") -> ApiError:
    """responsewriters.Forbidden: apierrors.NewForbidden with forbiddenMessage and the authorizer's reason."""
    who = attrs.user.name
    if not attrs.resource_request:
        msg = f'User "{who}" cannot {attrs.verb} path "{attrs.path}"'
    else:
        resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        scope = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
        msg = f'User "{who}" cannot {attrs.verb} resource "{resource}" in API group "{attrs.api_group}" {scope}'
    if reason:
        msg = f"{msg}: {reason}"
    qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    if not attrs.resource_request or not attrs.resource:
        return ApiError(403, "Forbidden", f"forbidden: {msg}", details={})
    head = f'{qualified} "{attrs.name}"' if attrs.name else qualified
    return ApiError(403, "Forbidden", f"{head} is forbidden: {msg}",
                    details={"name": attrs.name, "group": attrs.api_group, "kind": attrs.resource})


# --- RBAC rule evaluation (pkg/apis/rbac/v1/evaluation_helpers.go) ----------------------------------

def _strings(rule: Mapping[str, Any], key: str) -> list[str]:
    value = rule.get(key) or []
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def rule_allows(attrs: Attributes, rule: Mapping[str, Any]) -> bool:
    """plugin/pkg/auth/authorizer/rbac RuleAllows."""
    verbs = _strings(rule, "verbs")
    if "*" not in verbs and attrs.verb not in verbs:
        return False
    if not attrs.resource_request:
        urls = _strings(rule, "nonResourceURLs")
        return any(u == "*" or u == attrs.path or (u.endswith("*") and attrs.path.startswith(u.rstrip("*")))
                   for u in urls)
    groups = _strings(rule, "apiGroups")
    if "*" not in groups and attrs.api_group not in groups:
        return False
    combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    resources = _strings(rule, "resources")
    if not any(r == "*" or r == combined or (attrs.subresource and r == f"*/{attrs.subresource}")
               for r in resources):
        return False
    names = _strings(rule, "resourceNames")
    return not names or attrs.name in names


def _subject_applies(user: UserInfo, subject: Mapping[str, Any], namespace: str) -> bool:
    """pkg/registry/rbac/validation appliesToUser."""
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return user.name == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or namespace
        return bool(ns) and user.name == f"{SA_PREFIX}{ns}:{name}"
    return False


def _describe_subject(subject: Mapping[str, Any], binding_namespace: str) -> str:
    if subject.get("kind") == "ServiceAccount":
        return f'ServiceAccount "{subject.get("name")}/{subject.get("namespace") or binding_namespace}"'
    return f'{subject.get("kind")} "{subject.get("name")}"'


def _aggregate(errors: list[str]) -> str:
    """utilerrors.NewAggregate(errs).Error()."""
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


@dataclass(frozen=True)
class _Source:
    """Where a rule came from, in the words of the RBAC authorizer's "allowed by" reason."""

    text: str


RuleVisit = tuple[_Source | None, Mapping[str, Any] | None, str | None]


# --- escalation checks (pkg/registry/rbac/validation/policy_comparator.go, rule.go) ----------------------

def breakdown_rule(rule: Mapping[str, Any]) -> list[dict]:
    """BreakdownRule: one rule per (group, resource, verb[, name]) and per (non-resource URL, verb)."""
    out: list[dict] = []
    verbs, names = _strings(rule, "verbs"), _strings(rule, "resourceNames")
    for group in _strings(rule, "apiGroups"):
        for resource in _strings(rule, "resources"):
            for verb in verbs:
                base = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
                out.extend([{**base, "resourceNames": [n]} for n in names] if names else [base])
    for url in _strings(rule, "nonResourceURLs"):
        out.extend({"nonResourceURLs": [url], "verbs": [verb]} for verb in verbs)
    return out


def _resources_cover(owner: list[str], wanted: list[str]) -> bool:
    if "*" in owner or all(w in owner for w in wanted):
        return True
    for path in wanted:
        if path in owner:
            continue
        if "/" not in path or f"*/{path.split('/', 1)[1]}" not in owner:
            return False
    return True


def _urls_cover(owner: list[str], wanted: list[str]) -> bool:
    return all(any(o == w or (o.endswith("*") and w.startswith(o.rstrip("*"))) for o in owner) for w in wanted)


def rule_covers(owner: Mapping[str, Any], sub: Mapping[str, Any]) -> bool:
    """ruleCovers: ``owner`` grants everything ``sub`` does."""
    o_verbs, o_groups = _strings(owner, "verbs"), _strings(owner, "apiGroups")
    o_names = _strings(owner, "resourceNames")
    s_names = _strings(sub, "resourceNames")
    verbs = "*" in o_verbs or all(v in o_verbs for v in _strings(sub, "verbs"))
    groups = "*" in o_groups or all(g in o_groups for g in _strings(sub, "apiGroups"))
    resources = _resources_cover(_strings(owner, "resources"), _strings(sub, "resources"))
    urls = _urls_cover(_strings(owner, "nonResourceURLs"), _strings(sub, "nonResourceURLs"))
    names = not o_names if not s_names else (not o_names or all(n in o_names for n in s_names))
    return verbs and groups and resources and names and urls


def uncovered(owned: list[dict], wanted: list[dict]) -> list[dict]:
    """Covers: the broken-down rules of ``wanted`` that no rule of ``owned`` covers."""
    return [sub for rule in wanted for sub in breakdown_rule(rule) if not any(rule_covers(o, sub) for o in owned)]


def compact_rules(rules: list[dict]) -> list[dict]:
    """CompactRules: simple rules (one group, one resource, at most one name) merged across verbs."""
    out: list[dict] = []
    simple: dict[tuple[str, str, str], dict] = {}
    for rule in rules:
        groups, resources, names = (_strings(rule, k) for k in ("apiGroups", "resources", "resourceNames"))
        if len(groups) == 1 and len(resources) == 1 and len(names) <= 1 and not rule.get("nonResourceURLs"):
            key = (groups[0], resources[0], names[0] if names else "")
            if key in simple:
                simple[key]["verbs"] = simple[key]["verbs"] + _strings(rule, "verbs")
            else:
                simple[key] = json.loads(json.dumps(rule))
        else:
            out.append(rule)
    return out + list(simple.values())


def compact_string(rule: Mapping[str, Any]) -> str:
    """rbacv1helpers.CompactString: ``{APIGroups:[""], Resources:["pods"], Verbs:["get" "list"]}``."""
    parts = []
    for key, label in (("apiGroups", "APIGroups"), ("resources", "Resources"), ("nonResourceURLs", "NonResourceURLs"),
                       ("resourceNames", "ResourceNames"), ("verbs", "Verbs")):
        values = _strings(rule, key)
        if values:
            parts.append(f"{label}:[{' '.join(json.dumps(v) for v in values)}]")
    return "{" + ", ".join(parts) + "}"


# --- the bootstrap policy (plugin/pkg/auth/authorizer/rbac/bootstrappolicy) --------------------------

_RW = ["create", "delete", "deletecollection", "patch", "update"]
_READ = ["get", "list", "watch"]
_ALL = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


# Rules of the system:aggregate-to-{view,edit,admin} ClusterRoles (testdata/cluster-roles.yaml), and of
# metrics-server's system:aggregated-metrics-reader (the sim serves metrics.k8s.io as metrics-server does).
_VIEW_RULES = [
    _rule([""], ["configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "pods",
                 "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
                 "services/status"], _READ),
    _rule([""], ["bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status",
                 "replicationcontrollers/status", "resourcequotas", "resourcequotas/status"], _READ),
    _rule([""], ["namespaces"], _READ),
    _rule(["discovery.k8s.io"], ["endpointslices"], _READ),
    _rule(["apps"], ["controllerrevisions", "daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                     "deployments/status", "replicasets", "replicasets/scale", "replicasets/status", "statefulsets",
                     "statefulsets/scale", "statefulsets/status"], _READ),
    _rule(["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"], _READ),
    _rule(["batch"], ["cronjobs", "cronjobs/status", "jobs", "jobs/status"], _READ),
    _rule(["extensions"], ["daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                           "deployments/status", "ingresses", "ingresses/status", "networkpolicies", "replicasets",
                           "replicasets/scale", "replicasets/status", "replicationcontrollers/scale"], _READ),
    _rule(["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"], _READ),
    _rule(["networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"], _READ),
]
_METRICS_READER_RULES = [_rule(["metrics.k8s.io"], ["pods", "nodes"], _READ)]
_EDIT_RULES = [
    _rule([""], ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"], _READ),
    _rule([""], ["serviceaccounts"], ["impersonate"]),
    _rule([""], ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"], _RW),
    _rule([""], ["pods/eviction"], ["create"]),
    _rule([""], ["configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
                 "replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy"], _RW),
    _rule([""], ["serviceaccounts/token"], ["create"]),
    _rule(["apps"], ["daemonsets", "deployments", "deployments/rollback", "deployments/scale", "replicasets",
                     "replicasets/scale", "statefulsets", "statefulsets/scale"], _RW),
    _rule(["autoscaling"], ["horizontalpodautoscalers"], _RW),
    _rule(["batch"], ["cronjobs", "jobs"], _RW),
    _rule(["extensions"], ["daemonsets", "deployments", "deployments/rollback", "deployments/scale", "ingresses",
                           "networkpolicies", "replicasets", "replicasets/scale", "replicationcontrollers/scale"],
          _RW),
    _rule(["policy"], ["poddisruptionbudgets"], _RW),
    _rule(["networking.k8s.io"], ["ingresses", "networkpolicies"], _RW),
    _rule(["coordination.k8s.io"], ["leases"], _ALL),
]
_ADMIN_RULES = [
    _rule(["authorization.k8s.io"], ["localsubjectaccessreviews"], ["create"]),
    _rule([_RBAC], ["rolebindings", "roles"], _ALL),
]


def _meta(name: str, labels: dict[str, str] | None = None) -> dict:
    return {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults", **(labels or {})},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}}


def _cluster_role(name: str, rules: list[dict], *, aggregate_to: str | None = None,
                  aggregated_from: str | None = None) -> dict:
    labels = {f"rbac.authorization.k8s.io/aggregate-to-{aggregate_to}": "true"} if aggregate_to else None
    role: dict = {"apiVersion": f"{_RBAC}/v1", "kind": "ClusterRole", "metadata": _meta(name, labels)}
    if aggregated_from:  # the rules are the aggregation's result, written out (the sim runs no aggregation)
        role["aggregationRule"] = {"clusterRoleSelectors": [
            {"matchLabels": {f"rbac.authorization.k8s.io/aggregate-to-{aggregated_from}": "true"}}]}
    role["rules"] = json.loads(json.dumps(rules))
    return role


def _cluster_binding(name: str, role: str, groups: Iterable[str]) -> dict:
    return {"apiVersion": f"{_RBAC}/v1", "kind": "ClusterRoleBinding", "metadata": _meta(name),
            "roleRef": {"apiGroup": _RBAC, "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": _RBAC, "kind": "Group", "name": g} for g in groups]}


def bootstrap_policy() -> list[tuple[R.ResourceType, dict]]:
    """The ClusterRoles and ClusterRoleBindings kube-apiserver creates at start that requests rely on."""
    view = _VIEW_RULES + _METRICS_READER_RULES
    edit = _EDIT_RULES + view
    roles = [
        _cluster_role("cluster-admin", [_rule(["*"], ["*"], ["*"]), {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
        _cluster_role("admin", _ADMIN_RULES + edit, aggregated_from="admin"),
        _cluster_role("edit", edit, aggregate_to="admin", aggregated_from="edit"),
        _cluster_role("view", view, aggregate_to="edit", aggregated_from="view"),
        _cluster_role("system:aggregate-to-admin", _ADMIN_RULES, aggregate_to="admin"),
        _cluster_role("system:aggregate-to-edit", _EDIT_RULES, aggregate_to="edit"),
        _cluster_role("system:aggregate-to-view", _VIEW_RULES, aggregate_to="view"),
        _cluster_role("system:basic-user", [
            _rule(["authorization.k8s.io"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], ["create"]),
            _rule(["authentication.k8s.io"], ["selfsubjectreviews"], ["create"])]),
        _cluster_role("system:discovery", [{"nonResourceURLs": [
            "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz",
            "/version", "/version/"], "verbs": ["get"]}]),
        _cluster_role("system:public-info-viewer", [{"nonResourceURLs": [
            "/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]}]),
        _cluster_role("system:monitoring", [{"nonResourceURLs": [
            "/healthz", "/healthz/*", "/livez", "/livez/*", "/metrics", "/metrics/slis", "/readyz", "/readyz/*"],
            "verbs": ["get"]}]),
    ]
    metrics = _cluster_role("system:aggregated-metrics-reader", _METRICS_READER_RULES)
    metrics["metadata"] = {"name": "system:aggregated-metrics-reader", "labels": {
        "rbac.authorization.k8s.io/aggregate-to-admin": "true", "rbac.authorization.k8s.io/aggregate-to-edit": "true",
        "rbac.authorization.k8s.io/aggregate-to-view": "true"}}
    bindings = [
        _cluster_binding("cluster-admin", "cluster-admin", [MASTERS]),
        _cluster_binding("system:basic-user", "system:basic-user", [AUTHENTICATED]),
        _cluster_binding("system:discovery", "system:discovery", [AUTHENTICATED]),
        _cluster_binding("system:public-info-viewer", "system:public-info-viewer", [AUTHENTICATED, UNAUTHENTICATED]),
        _cluster_binding("system:monitoring", "system:monitoring", ["system:monitoring"]),
    ]
    return [(R.CLUSTERROLE, r) for r in [*roles, metrics]] + [(R.CLUSTERROLEBINDING, b) for b in bindings]


# --- tokens ------------------------------------------------------------------------------------------

def parse_token_file(text: str, *, path: str) -> dict[str, UserInfo]:
    """kube-apiserver ``--token-auth-file``: CSV ``token,user,uid[,"group1,group2"]`` (tokenfile.NewCSV)."""
    tokens: dict[str, UserInfo] = {}
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as e:
        raise InputError(f"cannot read the token file: {e}", file=path,
                         valid='CSV lines token,user,uid[,"group1,group2"]') from e
    for number, row in enumerate(rows, start=1):
        if not row:
            continue
        if len(row) < 3:
            raise InputError(f"token file must have at least 3 columns (token, user name, user uid), found "
                             f"{len(row)} on line {number}", file=path, valid='token,user,uid[,"group1,group2"]')
        if not row[0]:
            continue
        groups = tuple(row[3].split(",")) if len(row) >= 4 else ()
        tokens[row[0]] = UserInfo(row[1], row[2], groups)
    return tokens


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _with_authenticated(user: UserInfo) -> UserInfo:
    """group.NewAuthenticatedGroupAdder: every authenticated user is in system:authenticated."""
    if AUTHENTICATED in user.groups:
        return user
    return UserInfo(user.name, user.uid, (*user.groups, AUTHENTICATED), user.extra)


# --- the facade --------------------------------------------------------------------------------------

class Auth:
    """Token authentication, impersonation and authorisation over one store.

    ``enforce=False`` (the sim without ``--auth``) accepts every request; it still issues
    TokenRequest tokens, as every real cluster does."""

    def __init__(self, *, store: Any, enforce: bool, now: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.enforce = enforce
        self._now = now or (lambda: datetime.now(timezone.utc))
        self._key = secrets.token_bytes(32)
        self._tokens: dict[str, UserInfo] = {}
        self._lock = threading.Lock()
        self._request = threading.local()  # the user of the request this thread serves (one thread per request)

    # tokens

    def add_tokens(self, tokens: Mapping[str, UserInfo]) -> None:
        with self._lock:
            self._tokens.update(tokens)

    def issue_token(self, user: str, *, groups: Iterable[str] = (), uid: str = "") -> str:
        """A new static bearer token for ``user`` in ``groups`` (plus system:authenticated)."""
        if not user:
            raise InputError("a user name is needed", field="user", value=user)
        token = secrets.token_urlsafe(32)
        self.add_tokens({token: UserInfo(user, uid, tuple(groups))})
        return token

    def _sign(self, claims: dict) -> str:
        head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        sig = hmac.new(self._key, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64(sig)}"

    def _verify(self, token: str) -> dict | None:
        parts = token.split(".")
        if len(parts) != 3:
            return None
        want = hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(want, _unb64(parts[2])):
                return None
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, UnicodeDecodeError):
            return None
        return claims if isinstance(claims, dict) else None

    def token_request(self, rp: ResourcePath, body: Any, *, dry_run: bool = False) -> dict:
        """POST serviceaccounts/NAME/token (pkg/registry/core/serviceaccount/storage/token.go)."""
        assert rp.name is not None
        if not isinstance(body, dict):
            raise bad_request("the body must be an authentication.k8s.io/v1 TokenRequest")
        for key, want in (("apiVersion", "authentication.k8s.io/v1"), ("kind", "TokenRequest")):
            if body.get(key) not in (None, want):
                raise bad_request(f"the {key} in the data ({body.get(key)}) does not match the expected {key} ({want})")
        meta: dict = body["metadata"] if isinstance(body.get("metadata"), dict) else {}
        spec: dict = body["spec"] if isinstance(body.get("spec"), dict) else {}
        seconds = spec.get("expirationSeconds", _DEFAULT_TOKEN_SECONDS)
        if not isinstance(seconds, int) or isinstance(seconds, bool):
            raise bad_request("TokenRequest in version \"v1\" cannot be handled as a TokenRequest: json: cannot "
                              "unmarshal into Go struct field TokenRequestSpec.spec.expirationSeconds of type int64")
        causes = []
        if seconds < _MIN_TOKEN_SECONDS:  # ValidateTokenRequest
            causes.append({"reason": "FieldValueInvalid", "field": "spec.expirationSeconds",
                           "message": f"Invalid value: {seconds}: may not specify a duration less than 10 minutes"})
        if seconds > 1 << 32:
            causes.append({"reason": "FieldValueInvalid", "field": "spec.expirationSeconds",
                           "message": f"Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds"})
        if causes:
            raise invalid("TokenRequest", "authentication.k8s.io", str(meta.get("name", "")), causes)
        sa = self.store.get(R.SERVICEACCOUNT, rp.namespace, rp.name)
        audiences = [a for a in spec.get("audiences") or [] if isinstance(a, str)] or [API_AUDIENCE]
        now = self._now()
        expires = now + timedelta(seconds=seconds)
        scope: dict[str, Any] = {"namespace": rp.namespace,
                                 "serviceaccount": {"name": rp.name, "uid": sa["metadata"]["uid"]}}
        bound = spec.get("boundObjectRef")
        if isinstance(bound, dict) and bound:
            scope.update(self._bound(rp, bound))
        claims = {"aud": audiences, "exp": int(expires.timestamp()), "iat": int(now.timestamp()),
                  "iss": API_AUDIENCE, "jti": str(uuid.uuid4()), "kubernetes.io": scope,
                  "nbf": int(now.timestamp()), "sub": f"{SA_PREFIX}{rp.namespace}:{rp.name}"}
        out_spec = {"audiences": audiences, "expirationSeconds": seconds,
                    "boundObjectRef": bound if isinstance(bound, dict) and bound else None}
        return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": rp.name, "namespace": rp.namespace, "creationTimestamp": None},
                "spec": out_spec,
                "status": {"token": "" if dry_run else self._sign(claims),
                           "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}}

    def _bound(self, rp: ResourcePath, ref: dict) -> dict:
        kind, api_version, name = ref.get("kind"), ref.get("apiVersion", "v1"), str(ref.get("name", ""))
        if kind not in ("Pod", "Secret") or api_version not in ("v1", ""):
            group = api_version.split("/")[0] if "/" in str(api_version) else ""
            raise bad_request(f"cannot bind token to object of type {group}/{api_version.split('/')[-1]}, "
                              f"Kind={kind}")
        rt = R.POD if kind == "Pod" else R.SECRET
        obj = self.store.get(rt, rp.namespace, name)
        if kind == "Pod" and (obj.get("spec") or {}).get("serviceAccountName", "default") != rp.name:
            raise bad_request(f'cannot bind token for serviceaccount "{rp.name}" to pod running with different '
                              "serviceaccount name.")
        uid = obj["metadata"]["uid"]
        if ref.get("uid") and ref["uid"] != uid:
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {kind}.v1 "{name}": the UID in the '
                                            f'bound object reference ({ref["uid"]}) does not match the UID in record. '
                                            "The object might have been deleted and then recreated")
        return {kind.lower(): {"name": name, "uid": uid}}

    def authenticate(self, headers: Mapping[str, str], path: str) -> UserInfo:
        """The requesting user; 401 for a wrong token, or none outside the anonymous paths."""
        header = headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if not header:
            if path.rstrip("/") in ANONYMOUS_PATHS or path in ANONYMOUS_PATHS:
                return UserInfo(ANONYMOUS, groups=(UNAUTHENTICATED,))
            raise unauthorized()
        if scheme.lower() != "bearer" or not token:
            raise unauthorized()
        with self._lock:
            static = self._tokens.get(token)
        if static is not None:
            return _with_authenticated(static)
        user = self._service_account_user(token)
        if user is None:
            raise unauthorized()
        return user

    def _service_account_user(self, token: str) -> UserInfo | None:
        """pkg/serviceaccount JWT validation: signature, audience, time, and the objects still existing."""
        claims = self._verify(token)
        if claims is None:
            return None
        now = self._now().timestamp()
        aud = claims.get("aud")
        if API_AUDIENCE not in (aud if isinstance(aud, list) else [aud]):
            return None
        if not isinstance(claims.get("exp"), int) or now >= claims["exp"] or now < claims.get("nbf", 0) - 60:
            return None
        scope = claims.get("kubernetes.io") or {}
        ns, sa = scope.get("namespace"), (scope.get("serviceaccount") or {})
        try:
            live = self.store.get(R.SERVICEACCOUNT, ns, sa.get("name", ""))
            if live["metadata"]["uid"] != sa.get("uid"):
                return None
            for kind, rt in (("pod", R.POD), ("secret", R.SECRET)):
                if kind in scope and self.store.get(rt, ns, scope[kind]["name"])["metadata"]["uid"] != \
                        scope[kind]["uid"]:
                    return None
        except ApiError:
            return None
        extra: dict[str, tuple[str, ...]] = {_CREDENTIAL_ID: (f"JTI={claims.get('jti', '')}",)}
        if "pod" in scope:
            extra["authentication.kubernetes.io/pod-name"] = (scope["pod"]["name"],)
            extra["authentication.kubernetes.io/pod-uid"] = (scope["pod"]["uid"],)
        return UserInfo(f"{SA_PREFIX}{ns}:{sa['name']}", sa.get("uid", ""),
                        (SA_GROUP, f"{SA_GROUP}:{ns}", AUTHENTICATED), extra)

    # impersonation (staging/src/k8s.io/apiserver/pkg/endpoints/filters/impersonation.go)

    def impersonate(self, requestor: UserInfo, headers: Mapping[str, str]) -> UserInfo:
        wanted = headers.get("impersonate-user", "")
        groups_wanted = [g for g in headers.get("impersonate-group", "").split("\n") if g]
        uid_wanted = headers.get("impersonate-uid", "")
        extras = {unquote(k[len("impersonate-extra-"):]).lower(): [v for v in val.split("\n") if v]
                  for k, val in headers.items() if k.startswith("impersonate-extra-")}
        if not wanted:
            if groups_wanted or extras or uid_wanted:
                raise ApiError(500, "InternalError", "Internal error occurred: requested "
                                                     "groups, extra or uid without impersonating a user")
            return requestor
        checks: list[Attributes] = []
        username = wanted
        groups: list[str] = []
        if wanted.startswith(SA_PREFIX) and len(wanted[len(SA_PREFIX):].split(":")) == 2:
            ns, name = wanted[len(SA_PREFIX):].split(":")
            checks.append(Attributes(requestor, "impersonate", True, api_version="v1", namespace=ns,
                                     resource="serviceaccounts", name=name))
            if not groups_wanted:
                groups = [SA_GROUP, f"{SA_GROUP}:{ns}"]
        else:
            checks.append(Attributes(requestor, "impersonate", True, api_version="v1", resource="users", name=wanted))
        for group in groups_wanted:
            checks.append(Attributes(requestor, "impersonate", True, api_version="v1", resource="groups", name=group))
            groups.append(group)
        for key, values in extras.items():
            for value in values:
                checks.append(Attributes(requestor, "impersonate", True, api_group="authentication.k8s.io",
                                         api_version="v1", resource="userextras", subresource=key, name=value))
        if uid_wanted:
            checks.append(Attributes(requestor, "impersonate", True, api_group="authentication.k8s.io",
                                     api_version="v1", resource="uids", name=uid_wanted))
        for attrs in checks:
            decision = self.authorize(attrs)
            if not decision.allowed:
                raise forbidden(attrs, decision.reason)
        if username != ANONYMOUS:
            if AUTHENTICATED not in groups and UNAUTHENTICATED not in groups:
                groups.append(AUTHENTICATED)
        elif UNAUTHENTICATED not in groups:
            groups.append(UNAUTHENTICATED)
        return UserInfo(username, uid_wanted, tuple(groups), {k: tuple(v) for k, v in extras.items()})

    # authorisation

    def authorize(self, attrs: Attributes) -> Decision:
        """The union of the system:masters authorizer and RBAC (kube-apiserver's order)."""
        if MASTERS in attrs.user.groups:
            return Decision(True)
        errors: list[str] = []
        for source, rule, error in self._visit(attrs.user, attrs.namespace):
            if rule is not None and source is not None and rule_allows(attrs, rule):
                return Decision(True, f"RBAC: allowed by {source.text}")
            if error:
                errors.append(error)
        return Decision(False, f"RBAC: {_aggregate(errors)}" if errors else "")

    def _role_rules(self, ref: Mapping[str, Any], namespace: str) -> tuple[list[Mapping[str, Any]], str | None]:
        kind, name = ref.get("kind"), str(ref.get("name", ""))
        if kind not in ("Role", "ClusterRole"):
            return [], f'unsupported role reference kind: "{kind}"'
        rt = R.ROLE if kind == "Role" else R.CLUSTERROLE
        try:
            if kind == "Role" and not namespace:
                raise ApiError(404, "NotFound", "a Role needs a namespace")
            role = self.store.get(rt, namespace if kind == "Role" else None, name)
        except ApiError:
            return [], f'{kind.lower()}.{_RBAC} "{name}" not found'
        return [r for r in role.get("rules") or [] if isinstance(r, dict)], None

    def _visit(self, user: UserInfo, namespace: str) -> Iterator[RuleVisit]:
        """DefaultRuleResolver.VisitRulesFor: cluster bindings, then the namespace's bindings."""
        scopes: list[tuple[R.ResourceType, str | None]] = [(R.CLUSTERROLEBINDING, None)]
        if namespace:
            scopes.append((R.ROLEBINDING, namespace))
        for rt, ns in scopes:
            bindings, _, _ = self.store.list_objects(rt, ns)
            for binding in bindings:
                subjects = [s for s in binding.get("subjects") or [] if isinstance(s, dict)]
                subject = next((s for s in subjects if _subject_applies(user, s, ns or "")), None)
                if subject is None:
                    continue
                ref = binding.get("roleRef") or {}
                rules, error = self._role_rules(ref, ns or "")
                if error is not None:
                    yield None, None, error
                    continue
                name = binding["metadata"]["name"]
                label = f'ClusterRoleBinding "{name}"' if ns is None else f'RoleBinding "{name}/{ns}"'
                source = _Source(f'{label} of {ref.get("kind")} "{ref.get("name")}" to '
                                 f"{_describe_subject(subject, ns or '')}")
                for rule in rules:
                    yield source, rule, None

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[dict], list[dict], str]:
        """RBACAuthorizer.RulesFor: (resourceRules, nonResourceRules, evaluation error)."""
        resource_rules: list[dict] = []
        non_resource: list[dict] = []
        errors: list[str] = []
        for _source, rule, error in self._visit(user, namespace):
            if error:
                errors.append(error)
            if rule is None:
                continue
            if rule.get("resources"):
                entry = {"verbs": _strings(rule, "verbs"), "apiGroups": _strings(rule, "apiGroups"),
                         "resources": _strings(rule, "resources")}
                if rule.get("resourceNames"):
                    entry["resourceNames"] = _strings(rule, "resourceNames")
                resource_rules.append(entry)
            if rule.get("nonResourceURLs"):
                non_resource.append({"verbs": _strings(rule, "verbs"),
                                     "nonResourceURLs": _strings(rule, "nonResourceURLs")})
        return resource_rules, non_resource, _aggregate(errors) if errors else ""

    # the request chain

    def admit(self, method: str, path: str, query_text: str, headers: Mapping[str, str]) -> UserInfo:
        """Authenticate, impersonate and authorise one request (WithAuthentication, WithImpersonation,
        WithAuthorization); the effective user, or the refusal as an ``ApiError``."""
        self._request.user = None
        user = self.impersonate(self.authenticate(headers, path), headers)
        attrs = request_attributes(method, path, query_text, user)
        decision = self.authorize(attrs)
        if not decision.allowed:
            raise forbidden(attrs, decision.reason)
        self._request.user = user
        return user

    def check_apply_create(self, rt: R.ResourceType, rp: ResourcePath) -> None:
        """A server-side apply that creates the object needs ``create`` too (handlers/patch.go
        withAuthorization: ``NewForbidden`` with the authorizer's reason, often empty)."""
        user: UserInfo | None = getattr(self._request, "user", None)
        if not self.enforce or user is None:
            return
        attrs = Attributes(user, "create", True, api_group=rt.group, api_version=rt.version,
                           namespace=rp.namespace or "", resource=rt.plural, subresource=rp.subresource or "",
                           name=rp.name or "")
        decision = self.authorize(attrs)
        if not decision.allowed:
            qualified = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
            raise ApiError(403, "Forbidden", f'{qualified} "{attrs.name}" is forbidden: {decision.reason}',
                           details={"name": attrs.name, "group": rt.group, "kind": rt.plural})

    def check_rbac_write(self, rt: R.ResourceType, obj: Mapping[str, Any]) -> None:
        """Privilege escalation prevention (pkg/registry/rbac/*/policybased): a Role or ClusterRole may
        grant only what its writer holds (or has ``escalate`` on), a binding only a role its writer holds
        (or has ``bind`` on); system:masters may do either. Called with the object about to be stored."""
        user: UserInfo | None = getattr(self._request, "user", None)
        if not self.enforce or user is None or MASTERS in user.groups:
            return
        if rt not in (R.ROLE, R.CLUSTERROLE, R.ROLEBINDING, R.CLUSTERROLEBINDING):
            return
        meta = obj.get("metadata") or {}
        name, namespace = str(meta.get("name", "")), str(meta.get("namespace", "") if rt.namespaced else "")
        if rt in (R.ROLE, R.CLUSTERROLE):
            if self.authorize(Attributes(user, "escalate", True, api_group=_RBAC, api_version="v1",
                                         namespace=namespace, resource=rt.plural, name=name)).allowed:
                return
            rules = [r for r in obj.get("rules") or [] if isinstance(r, dict)]
        else:
            ref = obj.get("roleRef") or {}
            role_plural = "roles" if ref.get("kind") == "Role" else "clusterroles"
            if self.authorize(Attributes(user, "bind", True, api_group=_RBAC, api_version="v1", namespace=namespace,
                                         resource=role_plural, name=str(ref.get("name", "")))).allowed:
                return
            rules_found, error = self._role_rules(ref, namespace)
            if error is not None:
                kind = str(ref.get("kind", "")).lower()
                raise ApiError(404, "NotFound", error, details={"name": str(ref.get("name", "")), "group": _RBAC,
                                                                "kind": kind})
            rules = [dict(r) for r in rules_found]
        owned, owned_urls, _ = self.rules_for(user, namespace)
        missing = uncovered(owned + owned_urls, rules)
        if missing:
            groups = " ".join(json.dumps(g) for g in user.groups)
            detail = "\n".join(sorted({compact_string(r) for r in compact_rules(missing)}))
            raise ApiError(403, "Forbidden", f'{rt.plural}.{_RBAC} "{name}" is forbidden: user "{user.name}" '
                                             f"(groups=[{groups}]) is attempting to grant RBAC permissions not "
                                             f"currently held:\n{detail}",
                           details={"name": name, "group": _RBAC, "kind": rt.plural})

    def review(self, rt: R.ResourceType, obj: dict, user: UserInfo) -> dict:
        """SelfSubjectAccessReview, SelfSubjectRulesReview, SelfSubjectReview: answered for ``user``."""
        out = {"kind": rt.kind, "apiVersion": rt.api_version,
               "metadata": {**(obj.get("metadata") or {}), "creationTimestamp": None}}
        spec: dict = obj["spec"] if isinstance(obj.get("spec"), dict) else {}
        if rt == R.SELF_SUBJECT_REVIEW:
            out["status"] = {"userInfo": user.as_json()}
            return out
        out["spec"] = spec
        if rt == R.SELF_SUBJECT_RULES_REVIEW:
            resource_rules, non_resource, error = self.rules_for(user, str(spec.get("namespace") or ""))
            status: dict[str, Any] = {"resourceRules": resource_rules, "nonResourceRules": non_resource,
                                      "incomplete": False}
            if error:
                status["evaluationError"] = error
            out["status"] = status
            return out
        attrs = _review_attributes(spec, user, obj.get("metadata") or {})
        decision = self.authorize(attrs)
        result: dict[str, Any] = {"allowed": decision.allowed}
        if decision.reason:
            result["reason"] = decision.reason
        out["status"] = result
        return out


def _review_attributes(spec: Mapping[str, Any], user: UserInfo, meta: Mapping[str, Any]) -> Attributes:
    """authorizationutil.ResourceAttributesFrom / NonResourceAttributesFrom, with the SSAR validation."""
    res, non = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if isinstance(res, dict) and isinstance(non, dict):
        raise invalid("SelfSubjectAccessReview", "authorization.k8s.io", str(meta.get("name", "")), [
            {"reason": "FieldValueInvalid", "field": "spec.nonResourceAttributes",
             "message": "Invalid value: ...: cannot be specified in combination with resourceAttributes"}])
    if isinstance(non, dict):
        return Attributes(user, str(non.get("verb", "")), False, path=str(non.get("path", "")))
    if isinstance(res, dict):
        return Attributes(user, str(res.get("verb", "")), True, api_group=str(res.get("group", "")),
                          api_version=str(res.get("version", "")), namespace=str(res.get("namespace", "")),
                          resource=str(res.get("resource", "")), subresource=str(res.get("subresource", "")),
                          name=str(res.get("name", "")))
    raise invalid("SelfSubjectAccessReview", "authorization.k8s.io", str(meta.get("name", "")), [
        {"reason": "FieldValueInvalid", "field": "spec.resourceAttributes",
         "message": 'Invalid value: "null": exactly one of nonResourceAttributes or resourceAttributes must be '
                    "specified"}])


def now_from_clock(clock: Any) -> Callable[[], datetime]:
    """The sim clock's ``now`` when there is one (tokens expire in simulated time), else the wall clock."""
    if clock is not None and hasattr(clock, "now"):
        return clock.now
    return lambda: datetime.fromtimestamp(time.time(), timezone.utc)


# --- TLS ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ServingCert:
    """A CA and the API server certificate it signed, PEM-encoded (kubeadm's ca.crt and apiserver.crt)."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


def serving_cert(*, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), days: int = 365) -> ServingCert:
    """A new CA and a serving certificate for ``hosts`` (kubectl sends credentials only over TLS:
    client-go's DirectClientConfig reads the user's auth info only for a TLS transport)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(timezone.utc) - timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "eafix-sim-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    return ServingCert(ca.public_bytes(serialization.Encoding.PEM), cert.public_bytes(serialization.Encoding.PEM),
                       key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))


def server_ssl_context(cert: ServingCert) -> Any:
    """An ``ssl.SSLContext`` serving ``cert``; the key touches disk only in a 0700 directory, for a moment."""
    import os
    import ssl
    import tempfile

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix="eafix-sim-tls-") as tmp:
        chain, key = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        for path, data in ((chain, cert.cert_pem + cert.ca_pem), (key, cert.key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        context.load_cert_chain(chain, key)
    return context
