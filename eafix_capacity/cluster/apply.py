"""Apply a set of objects to a cluster with server-side apply: build every request, then send.

``kubectl apply`` sends objects in the order it reads them and stops half way at the first
refusal; ``kubernetes.utils.create_from_yaml(apply=True)`` uses the field manager
``python-client``. :func:`apply` builds every request first (a malformed object stops the
apply before anything is sent), orders them into phases (:mod:`eafix_capacity.cluster.order`),
and sends each with server-side apply (``application/apply-patch+yaml``) through the official
client's ``DynamicClient`` under the kit's own field manager. A dry run sends ``dryRun=All``.
Every object gets an :class:`ApplyRecord`: created, changed (with the paths that changed) or
unchanged, and the resourceVersion on a real apply. A refused object (a field another manager
owns, a kind whose CRD is missing, a namespace being deleted, a quota, a validation error) is
reported against its file and document; the rest of its phase is still tried, and nothing of
a later phase is sent (:class:`~eafix_capacity.cluster.applyerrors.ApplyFailed`).

Waiting for rollouts and the secrets options are not here: ``after_phase`` is the hook a
caller waits in (the ``infrastructure`` phase has ``wait_after``).
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from eafix_capacity.cluster.applyerrors import CATEGORY_CLASSES, ApplyFailed, ObjectFailure, field_conflicts
from eafix_capacity.cluster.context import Target, require_write
from eafix_capacity.cluster.errors import classify
from eafix_capacity.cluster.order import Phase, SourcedObject, phases

FIELD_MANAGER = "eafix-capacity"
_VOLATILE_METADATA = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "selfLink")


@dataclass(frozen=True)
class ApplyRecord:
    phase: str
    file: str
    document: int | None
    kind: str
    api_version: str
    namespace: str | None
    name: str
    outcome: str
    """``created``, ``changed`` or ``unchanged``."""
    diff: tuple[str, ...] = ()
    """The paths (``.spec.replicas``) that differ between the live object and the applied one,
    compared without managedFields, resourceVersion, generation, timestamps and status."""
    resource_version: str | None = None
    """The stored object's resourceVersion (a real apply only)."""
    dry_run: bool = True
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class _Request:
    phase: Phase
    item: SourcedObject
    body: dict[str, Any] = field(hash=False)


# --- pure ------------------------------------------------------------------------------------------

def normalized(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    """``obj`` without what the server changes on every write or owns alone (pure)."""
    if not obj:
        return {}
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = out.get("metadata")
    if isinstance(meta, Mapping):
        out["metadata"] = {k: v for k, v in meta.items() if k not in _VOLATILE_METADATA}
    return out


def changed_paths(before: Any, after: Any, path: str = "") -> list[str]:
    """The field paths where ``before`` and ``after`` differ (pure): ``.spec.replicas``,
    ``.spec.template.spec.containers[0].image``; an added or removed key is its own path."""
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        out: list[str] = []
        for key in sorted(set(before) | set(after), key=str):
            sub = f"{path}.{key}"
            if key not in before or key not in after:
                out.append(sub)
            else:
                out.extend(changed_paths(before[key], after[key], sub))
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [p for i, (b, a) in enumerate(zip(before, after)) for p in changed_paths(b, a, f"{path}[{i}]")]
    return [] if before == after else [path or "."]


def _status_body(exc: Any) -> dict[str, Any]:
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        doc = json.loads(body) if isinstance(body, str) else None
    except ValueError:
        return {"message": str(body).strip()}
    return doc if isinstance(doc, dict) else {}


def categorize(status: int, body: Mapping[str, Any]) -> str:
    """Which failure an HTTP refusal of an apply is (pure). The 403 texts are the API server's:
    ``unable to create new content in namespace X because it is being terminated``
    (NamespaceLifecycle admission) and ``exceeded quota: ...`` (ResourceQuota admission)."""
    message = str(body.get("message") or "")
    if status == 409 and field_conflicts(dict(body)):
        return "conflict"
    if status == 403 and "because it is being terminated" in message:
        return "namespace-terminating"
    if status == 403 and "exceeded quota" in message:
        return "quota"
    if status == 422:
        return "invalid"
    return "refused"


def build_requests(objects: Iterable[Any]) -> list[_Request]:
    """Every request of the apply, in phase order; a malformed object raises
    :class:`ApplyFailed` (phase ``build``) before anything is sent (pure)."""
    requests, failures = [], []
    for phase in phases(objects):
        for item in phase.objects:
            missing = [f for f, v in (("apiVersion", item.api_version), ("kind", item.kind),
                                      ("metadata.name", item.name)) if not v]
            if missing:
                failures.append(ObjectFailure("invalid", str(item.source), item.ref(), None,
                                              f"missing {', '.join(missing)}: cannot be applied"))
                continue
            requests.append(_Request(phase, item, copy.deepcopy(dict(item.obj))))
    if failures:
        raise ApplyFailed("build", failures, [])
    return requests


# --- sending ---------------------------------------------------------------------------------------

def apply(objects: Iterable[Any], *, api_client: Any, target: Target, dry_run: bool = True,
          field_manager: str = FIELD_MANAGER, force_conflicts: bool = False, context_given: bool = False,
          yes: bool = False, confirm: Callable[[str], bool] | None = None,
          after_phase: Callable[[Phase, list[ApplyRecord]], None] | None = None) -> list[ApplyRecord]:
    """Apply ``objects`` (mappings, or ``LoadedObject`` s that keep file and document) to the
    cluster of ``target`` through ``api_client``, phase by phase; return one record per object.

    A real apply (``dry_run=False``) first passes :func:`~eafix_capacity.cluster.context.require_write`
    with ``context_given``, ``yes`` and ``confirm`` (an explicit context, and ``--yes`` or a
    confirmation for a cluster that is not the sim); a dry run needs none. ``after_phase`` is
    called after each phase that succeeded (the rollout wait goes there). Raises an
    :class:`ApplyFailed` subclass for a refused phase, a ``TargetError`` when the cluster
    cannot be reached."""
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    requests = build_requests(objects)
    if not dry_run:
        require_write(target, context_given=context_given, yes=yes, confirm=confirm)
    try:
        client = DynamicClient(api_client)
    except Exception as e:
        raise classify(e, context=target.context, server=target.server, user=target.user or None,
                       auth=target.auth, cluster=target.cluster) from e
    # in a dry run nothing is created: objects in a namespace, or of a kind, that this apply creates
    # cannot be checked by the server, and are reported as created without its check
    new_namespaces: set[str] = set()
    new_kinds: set[tuple[str, str]] = set()
    records: list[ApplyRecord] = []
    by_phase: dict[str, list[_Request]] = {}
    for request in requests:
        by_phase.setdefault(request.phase.name, []).append(request)
    for name, members in by_phase.items():
        phase = members[0].phase
        failures: list[ObjectFailure] = []
        start = len(records)
        for request in members:
            item, body = request.item, request.body
            source = str(item.source)

            def record(outcome: str, diff: tuple[str, ...] = (), rv: str | None = None, note: str = "",
                       namespace: str | None = item.namespace) -> ApplyRecord:
                return ApplyRecord(phase=name, file=item.source.file, document=item.source.document, kind=item.kind,
                                   api_version=item.api_version, namespace=namespace, name=item.name,
                                   outcome=outcome, diff=diff, resource_version=None if dry_run else rv,
                                   dry_run=dry_run, note=note)

            try:
                resource = client.resources.get(api_version=item.api_version, kind=item.kind)
            except ResourceNotFoundError:
                if dry_run and (_group_of(item.api_version), item.kind) in new_kinds:
                    records.append(record("created", note="not checked by the server: its CRD is created by "
                                                          "this apply"))
                    continue
                # kubectl's text (cmd/apply: resource mapping not found)
                failures.append(ObjectFailure(
                    "missing-kind", source, item.ref(), 404,
                    f'no matches for kind "{item.kind}" in version "{item.api_version}"; ensure CRDs are installed '
                    "first"))
                continue
            except Exception as e:
                raise classify(e, context=target.context, server=target.server, user=target.user or None,
                               auth=target.auth, cluster=target.cluster) from e
            namespace = (item.namespace or target.namespace) if resource.namespaced else None
            if namespace is not None:
                body.setdefault("metadata", {})["namespace"] = namespace
            try:
                before = _get(resource, name=item.name, namespace=namespace)
                after = resource.server_side_apply(body=body, name=item.name, namespace=namespace,
                                                   field_manager=field_manager, force_conflicts=force_conflicts,
                                                   **({"dry_run": "All"} if dry_run else {}))
            except Exception as e:
                status = getattr(e, "status", None)
                if not isinstance(status, int) or status == 0:
                    raise classify(e, context=target.context, server=target.server, user=target.user or None,
                                   auth=target.auth, cluster=target.cluster) from e
                said = _status_body(e)
                details = said.get("details") if isinstance(said.get("details"), dict) else {}
                if (dry_run and status == 404 and namespace in new_namespaces
                        and (details or {}).get("kind") == "namespaces"):
                    records.append(record("created", namespace=namespace,
                                          note=f'not checked by the server: namespace "{namespace}" is created by '
                                               "this apply"))
                    continue
                category = categorize(status, said)
                failures.append(ObjectFailure(category, source, item.ref(), status,
                                              str(said.get("message") or e),
                                              tuple(field_conflicts(said)) if category == "conflict" else ()))
                continue
            live = after.to_dict() if hasattr(after, "to_dict") else dict(after)
            rv = str((live.get("metadata") or {}).get("resourceVersion") or "") or None
            if before is None:
                records.append(record("created", rv=rv, namespace=namespace))
                if item.kind == "Namespace":
                    new_namespaces.add(item.name)
                if item.kind == "CustomResourceDefinition":
                    spec = body.get("spec") or {}
                    new_kinds.add((str(spec.get("group") or ""), str((spec.get("names") or {}).get("kind") or "")))
            else:
                diff = tuple(changed_paths(normalized(before), normalized(live)))
                records.append(record("changed" if diff else "unchanged", diff, rv, namespace=namespace))
        if failures:
            cls = CATEGORY_CLASSES[failures[0].category]
            raise cls(name, failures, records, context=target.context, dry_run=dry_run)
        if after_phase is not None:
            after_phase(phase, records[start:])
    return records


def _group_of(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def _get(resource: Any, *, name: str, namespace: str | None) -> dict[str, Any] | None:
    """The live object, or None when there is none (404)."""
    try:
        got = resource.get(name=name, namespace=namespace)
    except Exception as e:
        if getattr(e, "status", None) == 404:
            return None
        raise
    return got.to_dict() if hasattr(got, "to_dict") else dict(got)
