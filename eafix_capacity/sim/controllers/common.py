"""What every sim controller shares: object predicates, condition and status helpers, names.

The real controllers share these through k8s.io/kubernetes/pkg/controller and
apimachinery (``controller.IsPodActive``, ``podutil.IsPodReady``, ``ComputeHash``,
``rand.String``); here they are pure functions of the objects, unit-tested without a store.
"""
from __future__ import annotations

import functools
import json
import random
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from eafix_capacity.sim.clock import SimClock

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
"""apimachinery's ``rand`` alphabet: no vowels (no words), no 0/1/3 (no look-alikes)."""

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
STS_REVISION_LABEL = "controller-revision-hash"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"


def fnv32a(data: bytes, h: int = 0x811C9DC5) -> int:
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """apimachinery ``rand.SafeEncodeString``: each byte mapped into :data:`SAFE_ALPHABET`."""
    return "".join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in text.encode())


def template_hash(template: Mapping, collision_count: int | None = None) -> str:
    """The ``pod-template-hash`` of a pod template, computed the way the Deployment controller does.

    FNV-32a over the template (canonical JSON here; Go hashes its struct dump, so the
    values differ from a real cluster's but have the same form), then the decimal digits of
    the 32-bit sum safe-encoded: up to 10 characters of ``[bcdfghjklmnpqrstvwxz2456789]``
    (in practice only the 10 characters digits map to), 10 for sums of 10 digits.
    """
    h = _text_hash(json.dumps(semantic(template), sort_keys=True, separators=(",", ":")))
    if collision_count:
        h = fnv32a((collision_count & 0xFFFFFFFF).to_bytes(4, "little"), h)
    return safe_encode(str(h))


@functools.lru_cache(maxsize=1024)
def _text_hash(text: str) -> int:
    """``fnv32a`` of ``text``'s UTF-8, remembered: every controller pass hashes the same templates
    again, and the byte loop costs more than the JSON that keys it."""
    return fnv32a(text.encode())


def semantic(obj: Any) -> Any:
    """``obj`` without null fields: Go decodes ``"creationTimestamp": null`` (which kubectl
    sends back in ``rollout undo``) to the zero value, so the two compare equal there."""
    if isinstance(obj, dict):
        return {k: semantic(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [semantic(v) for v in obj]
    return obj


def random_suffix(rand: random.Random, n: int = 5) -> str:
    """The ``generateName`` suffix: ``n`` characters of :data:`SAFE_ALPHABET`."""
    return "".join(rand.choice(SAFE_ALPHABET) for _ in range(n))


def qos_class(pod: Mapping) -> str:
    containers = list((pod.get("spec") or {}).get("containers") or []) + \
        list((pod.get("spec") or {}).get("initContainers") or [])
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            any_set = True
        for r in ("cpu", "memory"):
            want = req.get(r, lim.get(r))
            if r not in lim or want is None or str(want) != str(lim[r]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def is_ready(pod: Mapping) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def is_active(pod: Mapping) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") and \
        not pod["metadata"].get("deletionTimestamp")


def controller_of(obj: Mapping) -> Mapping | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def now_text(clock: SimClock | None = None) -> str:
    """Now as metav1.Time text: on the sim clock (``ctx.clock``), the wall clock without one."""
    if clock is not None:
        return clock.now_text()
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def deep_copy(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


def ns_name(obj: Mapping) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def owner_ref(owner: Mapping, kind: str, api_version: str = "apps/v1") -> dict:
    return {"apiVersion": api_version, "kind": kind, "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def strip_hash(template: Mapping) -> dict:
    t = semantic(template)
    labels = (t.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return t


def revision_of(rs: Mapping) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def set_condition(conditions: list[dict], ctype: str, status: str, reason: str, message: str,
                   *, now: str, update_time: bool = False) -> list[dict]:
    """Set one condition, keeping lastTransitionTime while its status does not change."""
    out = [c for c in conditions if c.get("type") != ctype]
    old = next((c for c in conditions if c.get("type") == ctype), None)
    cond: dict = {"type": ctype, "status": status}
    if update_time:
        same = old is not None and \
            (old.get("status"), old.get("reason"), old.get("message")) == (status, reason, message)
        cond["lastUpdateTime"] = old.get("lastUpdateTime", now) if same and old else now
    cond["lastTransitionTime"] = old["lastTransitionTime"] if old and old.get("status") == status and \
        old.get("lastTransitionTime") else now
    cond["reason"] = reason
    cond["message"] = message
    out.append(cond)
    return out


def same_status(a: Mapping | None, b: Mapping | None) -> bool:
    return json.dumps(a or {}, sort_keys=True) == json.dumps(b or {}, sort_keys=True)


def drop_zero(status: dict, keys: Iterable[str]) -> dict:
    for k in keys:
        if not status.get(k):
            status.pop(k, None)
    return status


def cpu_m_text(nanocores: float) -> str:
    m = int(nanocores // 1_000_000)
    return f"{m}m"


def success_status() -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


def newest_first(ts: str) -> tuple:
    """Sort key putting newer timestamps first."""
    return tuple(-ord(ch) for ch in ts)


def ordinal_of(pod_name: str, sts_name: str) -> int | None:
    prefix = f"{sts_name}-"
    if not pod_name.startswith(prefix):
        return None
    tail = pod_name[len(prefix):]
    return int(tail) if tail.isdigit() else None


def daemon_pod_node(pod: Mapping) -> str:
    """The node a DaemonSet pod is for (its nodeName, else its node affinity)."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    terms = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
             .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
    for term in terms:
        for f in term.get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("values"):
                return f["values"][0]
    return ""
