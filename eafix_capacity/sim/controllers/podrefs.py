"""What a pod names that must exist before it runs: claims, Secrets and ConfigMaps.

A real cluster admits a pod that names a missing Secret, ConfigMap or claim and then does
not run it: kube-scheduler's VolumeBinding PreFilter keeps it Pending while a claim is
missing; the kubelet's volume manager leaves it ContainerCreating with a ``FailedMount``
event while a Secret or ConfigMap volume cannot be set up; and the kubelet refuses to
create a container whose ``env``/``envFrom`` names a missing one
(``CreateContainerConfigError``). These pure functions find the first such problem, with
the real messages (pkg/kubelet/kubelet_pods.go makeEnvironmentVariables,
pkg/volume/configmap and pkg/volume/secret SetUpAt, the VolumeBinding plugin's PreFilter);
references marked ``optional: true`` never block.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

Refs = Mapping[tuple[str, str], frozenset[str]]
"""(namespace, name) of each Secret or ConfigMap that exists, to its data keys."""

_KIND_TEXT = {"secret": "secret", "configmap": "configmap"}
_KEY_KIND = {"secret": "Secret", "configmap": "ConfigMap"}


@dataclass(frozen=True)
class ContainerProblem:
    container: str
    message: str


def missing_claim(pod: Mapping, claims: frozenset[tuple[str, str]]) -> str | None:
    """The first claim the pod's volumes name that does not exist, as VolumeBinding's PreFilter words it."""
    ns = (pod.get("metadata") or {}).get("namespace") or "default"
    for v in (pod.get("spec") or {}).get("volumes") or []:
        claim = ((v or {}).get("persistentVolumeClaim") or {}).get("claimName") if isinstance(v, Mapping) else None
        if claim and (ns, claim) not in claims:
            return f'persistentvolumeclaim "{claim}" not found'
    return None


def claim_fit_message(reason: str, total_nodes: int) -> str:
    """The FailedScheduling text of a PreFilter rejection: no node histogram, every node unhelpful
    for preemption (FitError.Error with a PreFilterMsg)."""
    head = f"0/{total_nodes} nodes are available"
    text = f"{head}: {reason}."
    if total_nodes:
        text += f" preemption: {head}: {total_nodes} Preemption is not helpful for scheduling."
    return text


def mount_problem(pod: Mapping, secrets: Refs, configmaps: Refs) -> str | None:
    """The first Secret or ConfigMap volume (or projected source) that cannot be set up, as the
    ``FailedMount`` event says it."""
    ns = (pod.get("metadata") or {}).get("namespace") or "default"
    for v in (pod.get("spec") or {}).get("volumes") or []:
        if not isinstance(v, Mapping):
            continue
        sources: list[tuple[str, Mapping]] = []
        if isinstance(v.get("secret"), Mapping):
            sources.append(("secret", {"name": v["secret"].get("secretName"), **v["secret"]}))
        if isinstance(v.get("configMap"), Mapping):
            sources.append(("configmap", v["configMap"]))
        for src in ((v.get("projected") or {}).get("sources") or []) if isinstance(v.get("projected"), Mapping) else []:
            if isinstance(src, Mapping) and isinstance(src.get("secret"), Mapping):
                sources.append(("secret", src["secret"]))
            if isinstance(src, Mapping) and isinstance(src.get("configMap"), Mapping):
                sources.append(("configmap", src["configMap"]))
        for kind, ref in sources:
            name = ref.get("name")
            table = secrets if kind == "secret" else configmaps
            if not name or ref.get("optional") is True or (ns, name) in table:
                continue
            return f'MountVolume.SetUp failed for volume "{v.get("name", "")}" : {_KIND_TEXT[kind]} "{name}" not found'
    return None


def _ref_problem(kind: str, ref: Mapping, ns: str, table: Refs, key: str | None) -> str | None:
    name = ref.get("name") or ""
    if ref.get("optional") is True:
        return None
    if (ns, name) not in table:
        return f'{_KIND_TEXT[kind]} "{name}" not found'
    if key is not None and key not in table[(ns, name)]:
        return f"couldn't find key {key} in {_KEY_KIND[kind]} {ns}/{name}"
    return None


def container_config_problems(pod: Mapping, secrets: Refs, configmaps: Refs) -> list[ContainerProblem]:
    """Each container whose ``envFrom`` or ``env`` names a missing Secret, ConfigMap or key: the
    ``CreateContainerConfigError`` message the kubelet reports for it (envFrom is read first)."""
    ns = (pod.get("metadata") or {}).get("namespace") or "default"
    spec = pod.get("spec") or {}
    out: list[ContainerProblem] = []
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if not isinstance(c, Mapping):
            continue
        problem = None
        for src in c.get("envFrom") or []:
            if not isinstance(src, Mapping):
                continue
            for kind, field in (("configmap", "configMapRef"), ("secret", "secretRef")):
                if problem is None and isinstance(src.get(field), Mapping):
                    problem = _ref_problem(kind, src[field], ns, configmaps if kind == "configmap" else secrets, None)
        for env in c.get("env") or []:
            value_from = (env or {}).get("valueFrom") if isinstance(env, Mapping) else None
            if problem is not None or not isinstance(value_from, Mapping):
                continue
            for kind, field in (("configmap", "configMapKeyRef"), ("secret", "secretKeyRef")):
                ref = value_from.get(field)
                if problem is None and isinstance(ref, Mapping):
                    problem = _ref_problem(kind, ref, ns, configmaps if kind == "configmap" else secrets,
                                           str(ref.get("key", "")))
        if problem is not None:
            out.append(ContainerProblem(str(c.get("name", "")), problem))
    return out


def references(pod: Mapping) -> bool:
    """Whether the pod names any Secret or ConfigMap (the kubelet step lists them only then)."""
    spec = pod.get("spec") or {}
    if any(isinstance(v, Mapping) and (v.get("secret") or v.get("configMap") or v.get("projected"))
           for v in spec.get("volumes") or []):
        return True
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if isinstance(c, Mapping) and (c.get("envFrom") or any(
                isinstance(e, Mapping) and e.get("valueFrom") for e in c.get("env") or [])):
            return True
    return False
