"""The sim's faults: image pulls that fail, containers that crash or never turn Ready.

Failure paths (a rollout that stalls, an alert on restarts, a drain with an unready pod) can
only be tested on a cluster where things fail. A sim cluster fails where it is told to: a
faults file (``sim up --faults FILE``, ``SimCluster(faults=FILE)``) matches pods by namespace
and label selector, and a pod template can carry the annotation
``sim.eafix.io/fault: <fault>`` (``sim.eafix.io/fault-container: <name>`` limits it to one
container). The kubelet (:mod:`eafix_capacity.sim.controllers.kubelet`) plays the fault out
on the sim clock as a real kubelet would (:mod:`eafix_capacity.sim.controllers.containers`).

The file::

    faults:
      - namespace: eafix-trading            # required
        selector: app.kubernetes.io/name=redis   # a label selector, or a map of labels
        container: redis                     # optional: every container when left out
        fault: CrashLoopBackOff              # ErrImagePull | CrashLoopBackOff | ReadinessFailure
        exitCode: 2                          # CrashLoopBackOff: 1..255 (default 1)
        runSeconds: 30                       # CrashLoopBackOff: how long each run lasts (default 0)
        message: "..."                       # ErrImagePull: the pull error (default containerd's not found)

Everything here is pure: parsing and validation, and matching a pod to its faults.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from eafix_capacity.errors import InputError
from eafix_capacity.sim.apierror import ApiError
from eafix_capacity.sim.selectors import Requirement, parse_label_selector

FAULT_ANNOTATION = "sim.eafix.io/fault"
FAULT_CONTAINER_ANNOTATION = "sim.eafix.io/fault-container"
FAULT_KINDS = ("ErrImagePull", "CrashLoopBackOff", "ReadinessFailure")
_VALID_KINDS = "one of " + ", ".join(FAULT_KINDS)
_FIELDS = ("namespace", "selector", "container", "fault", "exitCode", "runSeconds", "message")
_FIELDS_OF = {"ErrImagePull": {"message"}, "CrashLoopBackOff": {"exitCode", "runSeconds"}, "ReadinessFailure": set()}


@dataclass(frozen=True)
class Fault:
    """A fault injected into one container."""
    kind: str
    """``ErrImagePull``, ``CrashLoopBackOff`` or ``ReadinessFailure``."""
    exit_code: int = 1
    run_seconds: float = 0.0
    message: str = ""


@dataclass(frozen=True)
class FaultRule:
    """One entry of a faults file."""
    namespace: str
    selector: tuple[Requirement, ...]
    container: str | None
    fault: Fault

    def matches(self, pod: Mapping) -> bool:
        meta = pod.get("metadata") or {}
        if meta.get("namespace") != self.namespace:
            return False
        labels = meta.get("labels") or {}
        return all(r.matches(labels) for r in self.selector)


def load_faults(path: str | Path) -> tuple[FaultRule, ...]:
    """Read and validate a faults file; any problem is one ``InputError`` line naming it."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the faults file: {e}", file=str(p)) from e
    return parse_faults(text, source=str(p))


def parse_faults(text: str, *, source: str = "<faults>") -> tuple[FaultRule, ...]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InputError(f"not valid YAML: {str(e).splitlines()[0]}", file=source) from e
    if data is None:
        return ()
    if not isinstance(data, dict) or set(data) - {"faults"}:
        extra = sorted(set(data) - {"faults"}) if isinstance(data, dict) else type(data).__name__
        raise InputError("unknown top-level content", file=source, value=extra,
                         valid="a mapping with one key, faults: a list of faults")
    items = data.get("faults")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise InputError("must be a list", file=source, field="faults", value=type(items).__name__,
                         valid="a list of {namespace, selector, fault, ...} mappings")
    return tuple(_rule(item, source=source, where=f"faults[{i}]") for i, item in enumerate(items))


def _rule(item: object, *, source: str, where: str) -> FaultRule:
    if not isinstance(item, dict):
        raise InputError("must be a mapping", file=source, field=where, value=type(item).__name__,
                         valid="{namespace, selector, fault, ...}")
    unknown = sorted(str(k) for k in item if k not in _FIELDS)
    if unknown:
        raise InputError("unknown field", file=source, field=f"{where}.{unknown[0]}", value=unknown[0],
                         valid="one of " + ", ".join(_FIELDS))
    kind = item.get("fault")
    if kind not in FAULT_KINDS:
        raise InputError("unknown fault", file=source, field=f"{where}.fault", value=kind, valid=_VALID_KINDS)
    misplaced = sorted(k for k in ("exitCode", "runSeconds", "message") if k in item and k not in _FIELDS_OF[kind])
    if misplaced:
        raise InputError(f"does not apply to fault {kind}", file=source, field=f"{where}.{misplaced[0]}",
                         value=item[misplaced[0]],
                         valid=f"fields of {kind}: {', '.join(sorted(_FIELDS_OF[kind])) or 'none'}")
    namespace = item.get("namespace")
    if not isinstance(namespace, str) or not namespace:
        raise InputError("required: the namespace of the pods", file=source, field=f"{where}.namespace",
                         value=namespace, valid="a namespace name, e.g. eafix-trading")
    container = item.get("container")
    if container is not None and (not isinstance(container, str) or not container):
        raise InputError("must be a container name", file=source, field=f"{where}.container", value=container,
                         valid="a container name, or leave it out for every container")
    exit_code = item.get("exitCode", 1)
    if isinstance(exit_code, bool) or not isinstance(exit_code, int) or not 1 <= exit_code <= 255:
        raise InputError("must be a failing exit code", file=source, field=f"{where}.exitCode", value=exit_code,
                         valid="an integer from 1 to 255")
    run_seconds = item.get("runSeconds", 0)
    if isinstance(run_seconds, bool) or not isinstance(run_seconds, (int, float)) or not 0 <= run_seconds < 1e9:
        raise InputError("must be a number of seconds", file=source, field=f"{where}.runSeconds", value=run_seconds,
                         valid="0 or more sim seconds")
    message = item.get("message", "")
    if not isinstance(message, str):
        raise InputError("must be a string", file=source, field=f"{where}.message", value=message,
                         valid="the image pull error text")
    return FaultRule(namespace=namespace, selector=_selector(item.get("selector"), source=source, where=where),
                     container=container,
                     fault=Fault(kind, exit_code=exit_code, run_seconds=float(run_seconds), message=message))


def _selector(value: object, *, source: str, where: str) -> tuple[Requirement, ...]:
    field = f"{where}.selector"
    valid = 'a label selector ("app=redis,tier in (db)") or a map of labels'
    if value is None:
        return ()
    if isinstance(value, dict):
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise InputError("labels must map strings to strings", file=source, field=field, value=value,
                             valid=valid + " (quote numbers)")
        text = ",".join(f"{k}={v}" for k, v in value.items())
    elif isinstance(value, str):
        text = value
    else:
        raise InputError("not a label selector", file=source, field=field, value=value, valid=valid)
    try:
        return parse_label_selector(text)
    except (ApiError, ValueError) as e:
        raise InputError(f"not a label selector ({getattr(e, 'message', e)})", file=source, field=field,
                         value=value, valid=valid) from e


def annotation_fault(annotations: Mapping[str, Any] | None) -> tuple[Fault | None, str | None, str | None]:
    """(fault, container, problem) from a pod's annotations: ``problem`` names a bad value."""
    value = (annotations or {}).get(FAULT_ANNOTATION)
    if value is None:
        return None, None, None
    container = (annotations or {}).get(FAULT_CONTAINER_ANNOTATION) or None
    if value not in FAULT_KINDS:
        return None, None, f"{FAULT_ANNOTATION}: unknown fault {value!r}; {_VALID_KINDS}"
    return Fault(str(value)), container, None


def faults_for(pod: Mapping, rules: tuple[FaultRule, ...]) -> tuple[dict[str | None, Fault], str | None]:
    """The faults of a pod by container name (``None``: every container), the annotation first,
    then the first matching rule; and a problem with its annotation, if any."""
    out: dict[str | None, Fault] = {}
    fault, container, problem = annotation_fault((pod.get("metadata") or {}).get("annotations"))
    if fault is not None:
        out[container] = fault
    for rule in rules:
        if rule.container not in out and None not in out and rule.matches(pod):
            out[rule.container] = rule.fault
    return out, problem


def fault_of(faults: Mapping[str | None, Fault], container: str) -> Fault | None:
    return faults.get(container) or faults.get(None)
