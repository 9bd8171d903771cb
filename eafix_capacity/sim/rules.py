"""The semantic validation rules of the sim's API server, in one table, with the real server's messages.

The schemas say which fields exist and their types; what they cannot say (a request above its
limit, ``minReplicas`` above ``maxReplicas``, a selector changed on update) the real API server
checks in Go, in ``pkg/apis/core/validation``, ``pkg/apis/apps/validation``,
``pkg/apis/autoscaling/validation``, ``pkg/apis/policy/validation`` and the registry strategies.
Each ``Rule`` below names the kinds it applies to, the field it reports, where the real check
lives, and a pure check that returns the ``details.causes`` the real server would send, with its
exact message (field.Error's ErrorBody: ``Invalid value: "2": must be less than or equal to cpu
limit of 1``). ``QUANTITY_FIELDS`` lists where quantities sit, so they are stored canonically.

Rules run on the defaulted object, as the real server validates after defaulting (a missing
``restartPolicy`` is ``Always`` by then); the checks still read a missing field as its default.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeGuard

from eafix_capacity import quantity
from eafix_capacity.sim import cron

CORE = "pkg/apis/core/validation/validation.go"
APPS = "pkg/apis/apps/validation/validation.go"
AUTOSCALING = "pkg/apis/autoscaling/validation/validation.go"
POLICY = "pkg/apis/policy/validation/validation.go"
BATCH = "pkg/apis/batch/validation/validation.go"

Cause = dict


@dataclass(frozen=True)
class Target:
    """What a check looks at: the object, the stored one on update (else None), and the node the
    rule is about (the object itself, or one of its pod specs) with its field path."""

    obj: dict
    old: dict | None
    node: dict
    path: str


@dataclass(frozen=True)
class Rule:
    """One semantic check of the real API server."""

    name: str
    kinds: tuple[tuple[str, str], ...]  # (API group, kind)
    field: str  # the field the refusal names; "<pod spec>" stands for spec / spec.template.spec / ...
    source: str  # where the real server checks it
    check: Callable[[Target], list[Cause]]
    scope: str = "object"  # "object" or "podspec" (run once per pod spec the kind holds)
    on_update_only: bool = False


# --- field.Error bodies, as apimachinery's ErrorBody prints them ------------------------------------

def go_quote(text: str) -> str:
    """Go's ``%q`` for a string (close enough for the text an API object holds)."""
    return json.dumps(text, ensure_ascii=False)


def go_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, GoText):
        return value.text
    return go_quote(str(value))


@dataclass(frozen=True)
class GoText:
    """A value already printed the way Go's ``%#v`` prints a struct."""

    text: str


def invalid(path: str, value: Any, detail: str) -> Cause:
    return {"reason": "FieldValueInvalid", "message": f"Invalid value: {go_value(value)}: {detail}", "field": path}


def required(path: str, detail: str = "") -> Cause:
    return {"reason": "FieldValueRequired", "message": "Required value" + (f": {detail}" if detail else ""),
            "field": path}


def unsupported(path: str, value: Any, supported: tuple[str, ...]) -> Cause:
    shown = ", ".join(go_quote(s) for s in supported)
    return {"reason": "FieldValueNotSupported",
            "message": f"Unsupported value: {go_value(value)}: supported values: {shown}", "field": path}


def forbidden(path: str, detail: str) -> Cause:
    return {"reason": "FieldValueForbidden", "message": f"Forbidden: {detail}", "field": path}


def duplicate(path: str, value: Any) -> Cause:
    return {"reason": "FieldValueDuplicate", "message": f"Duplicate value: {go_value(value)}", "field": path}


def go_string_map(value: Any) -> str:
    if value is None:
        return "map[string]string(nil)"
    items = sorted((str(k), str(v)) for k, v in (value or {}).items())
    return "map[string]string{" + ", ".join(f"{go_quote(k)}:{go_quote(v)}" for k, v in items) + "}"


def go_label_selector(sel: Any) -> GoText:
    """``%#v`` of a metav1.LabelSelector, as the immutable-selector message shows it."""
    sel = sel if isinstance(sel, dict) else {}
    exprs = sel.get("matchExpressions")
    if exprs is None:
        shown = "[]v1.LabelSelectorRequirement(nil)"
    else:
        parts = []
        for e in exprs if isinstance(exprs, list) else []:
            e = e if isinstance(e, dict) else {}
            values = e.get("values")
            vals = "[]string(nil)" if values is None else "[]string{" + ", ".join(
                go_quote(str(v)) for v in values) + "}"
            parts.append(f"v1.LabelSelectorRequirement{{Key:{go_quote(str(e.get('key', '')))}, "
                         f"Operator:{go_quote(str(e.get('operator', '')))}, Values:{vals}}}")
        shown = "[]v1.LabelSelectorRequirement{" + ", ".join(parts) + "}"
    return GoText(f"v1.LabelSelector{{MatchLabels:{go_string_map(sel.get('matchLabels'))}, MatchExpressions:{shown}}}")


def _go_int_or_string(value: Any) -> GoText:
    if isinstance(value, str):
        return GoText(f'intstr.IntOrString{{Type:1, IntVal:0, StrVal:{go_quote(value)}}}')
    return GoText(f'intstr.IntOrString{{Type:0, IntVal:{value}, StrVal:""}}')


# --- helpers ---------------------------------------------------------------------------------------

def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> list:
    return value if isinstance(value, list) else []


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _quantity(value: Any) -> quantity.Quantity | None:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    try:
        return quantity.parse(quantity.server_text(value))
    except (quantity.QuantityError, ValueError):
        return None


def _port_error(port: Any) -> str | None:
    """validation.IsValidPortNum."""
    if _is_int(port) and not 1 <= port <= 65535:
        return "must be between 1 and 65535, inclusive"
    return None


def _native(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def _overcommit_allowed(name: str) -> bool:
    """helper.IsOvercommitAllowed: native resources other than huge pages."""
    return _native(name) and not name.startswith("hugepages-")


_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")


# --- pod spec rules (pkg/apis/core/validation) ------------------------------------------------------

def _containers(t: Target) -> Iterator[tuple[str, dict]]:
    for key in ("initContainers", "containers"):
        for i, c in enumerate(_items(t.node.get(key))):
            if isinstance(c, dict):
                yield f"{t.path}.{key}[{i}]", c


def _container_names(t: Target) -> list[Cause]:
    out: list[Cause] = []
    seen: set[str] = set()
    for path, c in _containers(t):
        name = c.get("name")
        if not name:
            out.append(required(f"{path}.name"))
        elif not _DNS_LABEL.match(str(name)) or len(str(name)) > 63:
            out.append(invalid(f"{path}.name", str(name), _LABEL_MSG))
        elif name in seen:
            out.append(duplicate(f"{path}.name", str(name)))
        seen.add(str(name))
        if not c.get("image"):
            out.append(required(f"{path}.image"))
    return out


def _containers_present(t: Target) -> list[Cause]:
    return [] if _items(t.node.get("containers")) else [required(f"{t.path}.containers")]


def _container_ports(t: Target) -> list[Cause]:
    out: list[Cause] = []
    for path, c in _containers(t):
        for j, p in enumerate(_items(c.get("ports"))):
            p = _mapping(p)
            where = f"{path}.ports[{j}]"
            port = p.get("containerPort")
            if port == 0:
                out.append(required(f"{where}.containerPort"))
            elif (msg := _port_error(port)) is not None:
                out.append(invalid(f"{where}.containerPort", port, msg))
            host = p.get("hostPort")
            if host and (msg := _port_error(host)) is not None:
                out.append(invalid(f"{where}.hostPort", host, msg))
    return out


def _resources(t: Target) -> list[Cause]:
    """validateResourceRequirements: names, non-negative values, requests within limits."""
    out: list[Cause] = []
    for path, c in _containers(t):
        res = _mapping(c.get("resources"))
        limits, requests = _mapping(res.get("limits")), _mapping(res.get("requests"))
        lim_path, req_path = f"{path}.resources.limits", f"{path}.resources.requests"
        for name, value in sorted(limits.items()):
            out += _resource_value(str(name), value, f"{lim_path}[{name}]")
        for name, value in sorted(requests.items()):
            name = str(name)
            out += _resource_value(name, value, f"{req_path}[{name}]")
            req = _quantity(value)
            if name in limits:
                lim = _quantity(limits[name])
                if req is None or lim is None:
                    continue
                if req != lim and not _overcommit_allowed(name):
                    out.append(invalid(req_path, str(req), f"must be equal to {name} limit of {lim}"))
                elif req > lim:
                    out.append(invalid(req_path, str(req), f"must be less than or equal to {name} limit of {lim}"))
            elif not _overcommit_allowed(name):
                out.append(required(lim_path, "Limit must be set for non overcommitable resources"))
    return out


def _resource_value(name: str, value: Any, path: str) -> list[Cause]:
    out: list[Cause] = []
    if "/" not in name and name not in _CONTAINER_RESOURCES and not name.startswith("hugepages-"):
        out.append(invalid(path, name, "must be a standard resource for containers"))
    q = _quantity(value)
    if q is not None and q.value < 0:
        out.append(invalid(path, str(q), "must be greater than or equal to 0"))
    return out


def _tolerations(t: Target) -> list[Cause]:
    """ValidateTolerations."""
    out: list[Cause] = []
    for i, tol in enumerate(_items(t.node.get("tolerations"))):
        tol = _mapping(tol)
        where = f"{t.path}.tolerations[{i}]"
        key, op, value = str(tol.get("key") or ""), str(tol.get("operator") or ""), str(tol.get("value") or "")
        effect = str(tol.get("effect") or "")
        if not key and op != "Exists":
            out.append(invalid(f"{where}.operator", op, 'operator must be Exists when `key` is empty, which means '
                                                        '"match all values and all keys"'))
        if tol.get("tolerationSeconds") is not None and effect != "NoExecute":
            out.append(invalid(f"{where}.effect", effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if op == "Exists" and value:
            out.append(invalid(f"{where}.operator", value, "value must be empty when `operator` is 'Exists'"))
        elif op not in ("", "Equal", "Exists"):
            out.append(unsupported(f"{where}.operator", op, ("Equal", "Exists")))
    return out


def _template_restart_policy(t: Target) -> list[Cause]:
    """Workload templates: ValidatePodTemplateSpecForReplicaSet, ValidateStatefulSetSpec, ValidateDaemonSetSpec."""
    policy = t.node.get("restartPolicy") or "Always"
    return [] if policy == "Always" else [unsupported(f"{t.path}.restartPolicy", policy, ("Always",))]


_DEADLINE_WORKLOAD = {"Deployment": "ReplicaSet", "ReplicaSet": "ReplicaSet", "StatefulSet": "StatefulSet",
                      "DaemonSet": "DaemonSet"}


def _template_deadline(t: Target) -> list[Cause]:
    if t.node.get("activeDeadlineSeconds") is None:
        return []
    what = _DEADLINE_WORKLOAD.get(str(t.obj.get("kind")), "ReplicaSet")
    return [forbidden(f"{t.path}.activeDeadlineSeconds", f"activeDeadlineSeconds in {what} is not Supported")]


# --- object rules ----------------------------------------------------------------------------------

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def _label_key_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_QUALIFIED_NAME.match(name))


_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                  "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                  "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
              "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
              "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex "
                "used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
# kind -> (pattern, length limit, message) of its name: NameIsDNSSubdomain unless listed
_NAME_RULES: dict[str, tuple[re.Pattern[str], int, str]] = {
    "Namespace": (_DNS_LABEL, 63, _LABEL_MSG), "Service": (_DNS1035, 63, _DNS1035_MSG),
}


def _metadata(t: Target) -> list[Cause]:
    """ValidateObjectMeta: the name's syntax (per kind's name rule) and the labels'."""
    meta = _mapping(t.obj.get("metadata"))
    out: list[Cause] = []
    name = meta.get("name") or ""
    if name:
        pattern, limit, message = _NAME_RULES.get(str(t.obj.get("kind")), (_DNS_SUBDOMAIN, 253, _SUBDOMAIN_MSG))
        if len(name) > limit:
            out.append(invalid("metadata.name", name, f"must be no more than {limit} characters"))
        if not pattern.match(name):
            out.append(invalid("metadata.name", name, message))
    for key, value in _mapping(meta.get("labels")).items():
        if not _label_key_ok(str(key)):
            out.append(invalid("metadata.labels", str(key), "name part must consist of alphanumeric characters, "
                                                            "'-', '_' or '.', and must start and end with an "
                                                            "alphanumeric character"))
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            out.append(invalid("metadata.labels", str(value), "a valid label must be an empty string or consist of "
                                                              "alphanumeric characters, '-', '_' or '.', and must "
                                                              "start and end with an alphanumeric character"))
    return out


_EMPTY_SELECTOR_FOR = {"Deployment": "deployment", "ReplicaSet": "deployment", "StatefulSet": "statefulset",
                       "DaemonSet": "daemonset"}


def _workload_selector(t: Target) -> list[Cause]:
    """The selector must be set, non-empty, and match the template's labels."""
    spec = _mapping(t.obj.get("spec"))
    selector = spec.get("selector")
    labels = _mapping(_mapping(_mapping(spec.get("template")).get("metadata")).get("labels"))
    if not isinstance(selector, dict):
        return [required("spec.selector")]
    match_labels = _mapping(selector.get("matchLabels"))
    if not match_labels and not _items(selector.get("matchExpressions")):
        what = _EMPTY_SELECTOR_FOR.get(str(t.obj.get("kind")), "deployment")
        return [invalid("spec.selector", go_label_selector(selector), f"empty selector is invalid for {what}")]
    if any(labels.get(k) != v for k, v in match_labels.items()):
        return [invalid("spec.template.metadata.labels", GoText(go_string_map(labels)),
                        "`selector` does not match template `labels`")]
    return []


def _workload_containers(t: Target) -> list[Cause]:
    template = _mapping(_mapping(t.obj.get("spec")).get("template"))
    if _items(_mapping(template.get("spec")).get("containers")):
        return []
    return [required("spec.template.spec.containers")]


def _non_negative(*fields: str) -> Callable[[Target], list[Cause]]:
    """ValidateNonnegativeField on top-level spec fields."""
    def check(t: Target) -> list[Cause]:
        spec = _mapping(t.obj.get("spec"))
        return [invalid(f"spec.{f}", spec[f], "must be greater than or equal to 0")
                for f in fields if _is_int(spec.get(f)) and spec[f] < 0]
    return check


def _progress_deadline(t: Target) -> list[Cause]:
    spec = _mapping(t.obj.get("spec"))
    deadline, ready = spec.get("progressDeadlineSeconds"), spec.get("minReadySeconds", 0)
    if _is_int(deadline) and _is_int(ready) and deadline >= 0 and deadline <= ready:
        return [invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds")]
    return []


def _rolling_update(t: Target) -> list[Cause]:
    """ValidateRollingUpdateDeployment: maxUnavailable and maxSurge cannot both be 0."""
    ru = _mapping(_mapping(_mapping(t.obj.get("spec")).get("strategy")).get("rollingUpdate"))
    if "maxUnavailable" not in ru or "maxSurge" not in ru:
        return []
    unavailable, surge = ru["maxUnavailable"], ru["maxSurge"]
    if _int_or_percent(unavailable) == 0 and _int_or_percent(surge) == 0:
        return [invalid("spec.strategy.rollingUpdate.maxUnavailable", _go_int_or_string(unavailable),
                        "may not be 0 when `maxSurge` is 0")]
    return []


def _int_or_percent(value: Any) -> int | None:
    if _is_int(value):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[0-9]+%", value):
        return int(value[:-1])
    return None


def _selector_immutable(t: Target) -> list[Cause]:
    """The registry strategies' ValidateUpdate for apps/v1 Deployments, ReplicaSets and DaemonSets."""
    assert t.old is not None
    new, old = _mapping(t.obj.get("spec")).get("selector"), _mapping(t.old.get("spec")).get("selector")
    if _normal_selector(new) == _normal_selector(old):
        return []
    return [invalid("spec.selector", go_label_selector(new), "field is immutable")]


def _normal_selector(sel: Any) -> Any:
    # Semantic equality: an absent list or map equals an empty one only where Go's DeepEqual agrees
    return json.dumps(sel, sort_keys=True)


_STS_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds")


def _statefulset_update(t: Target) -> list[Cause]:
    """ValidateStatefulSetUpdate: only some spec fields may change."""
    assert t.old is not None
    new = {k: v for k, v in _mapping(t.obj.get("spec")).items() if k not in _STS_MUTABLE}
    old = {k: v for k, v in _mapping(t.old.get("spec")).items() if k not in _STS_MUTABLE}
    if json.dumps(new, sort_keys=True) == json.dumps(old, sort_keys=True):
        return []
    return [forbidden("spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                              "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
                              "'minReadySeconds' are forbidden")]


def _service_ports(t: Target) -> list[Cause]:
    """ValidateService's port checks (validateServicePort) and the node port allocator's range."""
    spec = _mapping(t.obj.get("spec"))
    ports = _items(spec.get("ports"))
    out: list[Cause] = []
    names: set[str] = set()
    for i, p in enumerate(ports):
        p = _mapping(p)
        where = f"spec.ports[{i}]"
        name = p.get("name")
        if len(ports) > 1 and not name:
            out.append(required(f"{where}.name"))
        elif name:
            if name in names:
                out.append(duplicate(f"{where}.name", str(name)))
            names.add(str(name))
        if (msg := _port_error(p.get("port"))) is not None:
            out.append(invalid(f"{where}.port", p["port"], msg))
        target = p.get("targetPort")
        if _is_int(target) and (msg := _port_error(target)) is not None:
            out.append(invalid(f"{where}.targetPort", target, msg))
        node_port = p.get("nodePort")
        if node_port and spec.get("type", "ClusterIP") == "ClusterIP":
            out.append(forbidden(f"{where}.nodePort", "may not be used when `type` is 'ClusterIP'"))
        elif _is_int(node_port) and node_port and not 30000 <= node_port <= 32767:
            out.append(invalid(f"{where}.nodePort", node_port, "provided port is not in the valid range. The range "
                                                               "of valid ports is 30000-32767"))
    return out


def _hpa_replicas(t: Target) -> list[Cause]:
    """validateHorizontalPodAutoscalerSpec (HPAScaleToZero off: minReplicas >= 1)."""
    spec = _mapping(t.obj.get("spec"))
    low, high = spec.get("minReplicas"), spec.get("maxReplicas")
    out: list[Cause] = []
    if _is_int(low) and low < 1:
        out.append(invalid("spec.minReplicas", low, "must be greater than or equal to 1"))
    if _is_int(high) and high < 1:
        out.append(invalid("spec.maxReplicas", high, "must be greater than 0"))
    if _is_int(low) and _is_int(high) and high < low:
        out.append(invalid("spec.maxReplicas", high, "must be greater than or equal to `minReplicas`"))
    return out


def _go_pointer(type_name: str, value: Any, address: str) -> str:
    return f"(*{type_name})(nil)" if value is None else f"(*{type_name})({address})"


def _pdb(t: Target) -> list[Cause]:
    """ValidatePodDisruptionBudgetSpec. The real message prints the spec with Go's ``%#v``, pointer
    addresses included; the sim prints fixed addresses in their place."""
    spec = _mapping(t.obj.get("spec"))
    out: list[Cause] = []
    low, high = spec.get("minAvailable"), spec.get("maxUnavailable")
    if low is not None and high is not None:
        fields = (("MinAvailable", "intstr.IntOrString", low), ("Selector", "v1.LabelSelector", spec.get("selector")),
                  ("MaxUnavailable", "intstr.IntOrString", high),
                  ("UnhealthyPodEvictionPolicy", "policy.UnhealthyPodEvictionPolicyType",
                   spec.get("unhealthyPodEvictionPolicy")))
        shown = "policy.PodDisruptionBudgetSpec{" + ", ".join(
            f"{name}:{_go_pointer(go_type, value, f'0xc000a1e0{i}0')}"
            for i, (name, go_type, value) in enumerate(fields)) + "}"
        out.append(invalid("spec", GoText(shown), "minAvailable and maxUnavailable cannot be both set"))
    for key, value in (("minAvailable", low), ("maxUnavailable", high)):
        if _is_int(value) and value < 0:
            out.append(invalid(f"spec.{key}", value, "must be greater than or equal to 0"))
        elif isinstance(value, str) and (pct := _int_or_percent(value)) is not None and pct > 100:
            out.append(invalid(f"spec.{key}", _go_int_or_string(value), "must not be greater than 100%"))
    return out


def _quota_hard(t: Target) -> list[Cause]:
    """ValidateResourceQuotaSpec: ValidateResourceQuantityValue on each hard limit."""
    out: list[Cause] = []
    for name, value in sorted(_mapping(_mapping(t.obj.get("spec")).get("hard")).items()):
        q = _quantity(value)
        if q is not None and q.value < 0:
            out.append(invalid(f"spec.hard[{name}]", str(q), "must be greater than or equal to 0"))
    return out


def _pvc_storage(t: Target) -> list[Cause]:
    """ValidatePersistentVolumeClaimSpec: a storage request, greater than zero."""
    requests = _mapping(_mapping(_mapping(t.obj.get("spec")).get("resources")).get("requests"))
    if "storage" not in requests:
        return [required("spec.resources[storage]")]
    q = _quantity(requests["storage"])
    if q is not None and q.value <= 0:
        return [invalid("spec.resources[storage]", str(q), "must be greater than zero")]
    return []


def _cron_schedule(t: Target) -> list[Cause]:
    """validateScheduleFormat: the schedule must parse as robfig/cron's ParseStandard reads it."""
    schedule = _mapping(t.obj.get("spec")).get("schedule")
    if not isinstance(schedule, str):
        return []  # a missing or mistyped schedule is the schema checks' to report
    try:
        cron.parse(schedule)
    except cron.CronError as e:
        return [invalid("spec.schedule", schedule, str(e))]
    return []


# --- the table -------------------------------------------------------------------------------------

_POD = (("", "Pod"),)
def _job_restart_policy(t: Target) -> list[Cause]:
    """validateJobSpec: a Job's pods run to completion, so ``Always`` (the pod default) is refused."""
    policy = t.node.get("restartPolicy") or "Always"
    return [] if policy in ("OnFailure", "Never") else \
        [unsupported(f"{t.path}.restartPolicy", policy, ("OnFailure", "Never"))]


_WORKLOADS = (("apps", "Deployment"), ("apps", "ReplicaSet"), ("apps", "StatefulSet"), ("apps", "DaemonSet"))
_POD_SPEC_KINDS = _POD + _WORKLOADS + (("", "PodTemplate"), ("", "ReplicationController"), ("batch", "Job"),
                                       ("batch", "CronJob"))

# Where each kind holds its pod spec(s).
POD_SPEC_PATHS: dict[tuple[str, str], str] = {
    ("", "Pod"): "spec", ("", "PodTemplate"): "template.spec", ("", "ReplicationController"): "spec.template.spec",
    ("apps", "Deployment"): "spec.template.spec", ("apps", "ReplicaSet"): "spec.template.spec",
    ("apps", "StatefulSet"): "spec.template.spec", ("apps", "DaemonSet"): "spec.template.spec",
    ("batch", "Job"): "spec.template.spec", ("batch", "CronJob"): "spec.jobTemplate.spec.template.spec",
}

RULES: tuple[Rule, ...] = (
    Rule("object-metadata", (), "metadata.name, metadata.labels", f"{CORE} ValidateObjectMeta", _metadata),
    Rule("pod-has-containers", _POD, "<pod spec>.containers", f"{CORE} ValidatePodSpec", _containers_present,
         scope="podspec"),
    Rule("container-name-image", _POD_SPEC_KINDS, "<pod spec>.containers[i].name, .image",
         f"{CORE} validateContainers", _container_names, scope="podspec"),
    Rule("container-ports", _POD_SPEC_KINDS, "<pod spec>.containers[i].ports[j].containerPort",
         f"{CORE} validateContainerPorts", _container_ports, scope="podspec"),
    Rule("container-resources", _POD_SPEC_KINDS, "<pod spec>.containers[i].resources.requests",
         f"{CORE} validateResourceRequirements", _resources, scope="podspec"),
    Rule("tolerations", _POD_SPEC_KINDS, "<pod spec>.tolerations[i].operator", f"{CORE} ValidateTolerations",
         _tolerations, scope="podspec"),
    Rule("template-restart-policy", _WORKLOADS, "spec.template.spec.restartPolicy",
         f"{APPS} ValidatePodTemplateSpecForReplicaSet / ValidateStatefulSetSpec / ValidateDaemonSetSpec",
         _template_restart_policy, scope="podspec"),
    Rule("template-active-deadline", _WORKLOADS, "spec.template.spec.activeDeadlineSeconds",
         f"{APPS} ValidatePodTemplateSpecForReplicaSet / ValidateStatefulSetSpec / ValidateDaemonSetSpec",
         _template_deadline, scope="podspec"),
    Rule("workload-selector", _WORKLOADS, "spec.selector, spec.template.metadata.labels",
         f"{APPS} ValidateDeploymentSpec / ValidateReplicaSetSpec / ValidateStatefulSetSpec / ValidateDaemonSetSpec",
         _workload_selector),
    Rule("workload-containers", _WORKLOADS, "spec.template.spec.containers", f"{CORE} ValidatePodSpec",
         _workload_containers),
    Rule("replicas-non-negative", _WORKLOADS[:3], "spec.replicas, spec.minReadySeconds, spec.revisionHistoryLimit",
         f"{APPS} ValidateDeploymentSpec / ValidateReplicaSetSpec / ValidateStatefulSetSpec",
         _non_negative("replicas", "minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds")),
    Rule("daemonset-non-negative", (("apps", "DaemonSet"),), "spec.minReadySeconds, spec.revisionHistoryLimit",
         f"{APPS} ValidateDaemonSetSpec", _non_negative("minReadySeconds", "revisionHistoryLimit")),
    Rule("progress-deadline", (("apps", "Deployment"),), "spec.progressDeadlineSeconds",
         f"{APPS} ValidateDeploymentSpec", _progress_deadline),
    Rule("rolling-update", (("apps", "Deployment"),), "spec.strategy.rollingUpdate.maxUnavailable",
         f"{APPS} ValidateRollingUpdateDeployment", _rolling_update),
    Rule("selector-immutable", (("apps", "Deployment"), ("apps", "ReplicaSet"), ("apps", "DaemonSet")),
         "spec.selector", "pkg/registry/apps/{deployment,replicaset,daemonset}/strategy.go ValidateUpdate",
         _selector_immutable, on_update_only=True),
    Rule("statefulset-spec-immutable", (("apps", "StatefulSet"),), "spec", f"{APPS} ValidateStatefulSetUpdate",
         _statefulset_update, on_update_only=True),
    Rule("service-ports", (("", "Service"),), "spec.ports[i].port, .targetPort, .nodePort, .name",
         f"{CORE} validateServicePort; pkg/registry/core/service/portallocator", _service_ports),
    Rule("hpa-replicas", (("autoscaling", "HorizontalPodAutoscaler"),), "spec.minReplicas, spec.maxReplicas",
         f"{AUTOSCALING} validateHorizontalPodAutoscalerSpec", _hpa_replicas),
    Rule("pdb-spec", (("policy", "PodDisruptionBudget"),), "spec, spec.minAvailable, spec.maxUnavailable",
         f"{POLICY} ValidatePodDisruptionBudgetSpec", _pdb),
    Rule("quota-hard", (("", "ResourceQuota"),), "spec.hard[name]", f"{CORE} ValidateResourceQuotaSpec",
         _quota_hard),
    Rule("pvc-storage", (("", "PersistentVolumeClaim"),), "spec.resources[storage]",
         f"{CORE} ValidatePersistentVolumeClaimSpec", _pvc_storage),
    Rule("cronjob-schedule", (("batch", "CronJob"),), "spec.schedule", f"{BATCH} validateScheduleFormat",
         _cron_schedule),
    Rule("job-restart-policy", (("batch", "Job"), ("batch", "CronJob")), "<pod spec>.restartPolicy",
         f"{BATCH} validateJobSpec", _job_restart_policy, scope="podspec"),
)


def _at(obj: dict, path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def check(obj: dict, group: str, kind: str, *, old: dict | None = None) -> list[Cause]:
    """Every cause the rules find in ``obj`` (a built-in kind); ``old`` is the stored object on update."""
    causes: list[Cause] = []
    spec_path = POD_SPEC_PATHS.get((group, kind))
    pod_spec = _at(obj, spec_path) if spec_path else None
    for rule in RULES:
        if rule.kinds and (group, kind) not in rule.kinds:
            continue
        if rule.on_update_only and old is None:
            continue
        if rule.scope == "podspec":
            if isinstance(pod_spec, dict) and spec_path:
                causes += rule.check(Target(obj, old, pod_spec, spec_path))
        else:
            causes += rule.check(Target(obj, old, obj, ""))
    return causes


# --- where quantities sit (stored in canonical form) ------------------------------------------------

_POD_SPEC_QUANTITIES = ("containers[*].resources.requests.*", "containers[*].resources.limits.*",
                        "initContainers[*].resources.requests.*", "initContainers[*].resources.limits.*",
                        "ephemeralContainers[*].resources.requests.*", "ephemeralContainers[*].resources.limits.*",
                        "resources.requests.*", "resources.limits.*", "overhead.*", "volumes[*].emptyDir.sizeLimit",
                        "containers[*].env[*].valueFrom.resourceFieldRef.divisor",
                        "initContainers[*].env[*].valueFrom.resourceFieldRef.divisor",
                        "volumes[*].downwardAPI.items[*].resourceFieldRef.divisor")
_CLAIM = ("resources.requests.*", "resources.limits.*")
_METRIC_TARGETS = tuple(f"spec.metrics[*].{source}.target.{value}"
                        for source in ("resource", "containerResource", "pods", "object", "external")
                        for value in ("value", "averageValue"))

QUANTITY_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "PersistentVolumeClaim"): tuple(f"spec.{p}" for p in _CLAIM) + ("status.capacity.*",),
    ("", "PersistentVolume"): ("spec.capacity.*",),
    ("", "ResourceQuota"): ("spec.hard.*", "status.hard.*", "status.used.*"),
    ("", "LimitRange"): tuple(f"spec.limits[*].{k}.*" for k in ("max", "min", "default", "defaultRequest",
                                                                "maxLimitRequestRatio")),
    ("", "Node"): ("status.capacity.*", "status.allocatable.*"),
    ("apps", "StatefulSet"): tuple(f"spec.volumeClaimTemplates[*].spec.{p}" for p in _CLAIM),
    ("autoscaling", "HorizontalPodAutoscaler"): _METRIC_TARGETS,
}


def quantity_fields(group: str, kind: str) -> tuple[str, ...]:
    """The quantity path patterns of a kind: ``[*]`` is every list item, ``*`` every map value."""
    out = QUANTITY_FIELDS.get((group, kind), ())
    spec_path = POD_SPEC_PATHS.get((group, kind))
    if spec_path:
        out = out + tuple(f"{spec_path}.{p}" for p in _POD_SPEC_QUANTITIES)
    return out


def quantity_slots(obj: dict, pattern: str) -> Iterator[tuple[Any, Any]]:
    """(container, key) of every value at ``pattern`` in ``obj``."""
    yield from _slots(obj, pattern.split("."))


def _slots(node: Any, parts: list[str]) -> Iterator[tuple[Any, Any]]:
    head, rest = parts[0], parts[1:]
    if head == "*":
        if isinstance(node, dict):
            for key in list(node):
                yield from _leaf_or_deeper(node, key, rest)
        return
    name, many = (head[:-3], True) if head.endswith("[*]") else (head, False)
    if not isinstance(node, dict) or name not in node:
        return
    if many:
        items = node[name]
        if isinstance(items, list):
            for i in range(len(items)):
                yield from _leaf_or_deeper(items, i, rest)
        return
    yield from _leaf_or_deeper(node, name, rest)


def _leaf_or_deeper(container: Any, key: Any, rest: list[str]) -> Iterator[tuple[Any, Any]]:
    if rest:
        yield from _slots(container[key], rest)
    else:
        yield container, key
