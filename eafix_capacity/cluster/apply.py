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

The template Secret's placeholders are filled, or the External Secrets variant chosen, by
:mod:`eafix_capacity.cluster.secrets` before the first request; ``--prune`` is
:mod:`eafix_capacity.cluster.prune`. Waiting for rollouts is not here: ``after_phase`` is the
hook a caller waits in (:func:`eafix_capacity.cluster.rollout.waiter`; the ``infrastructure``
phase has ``wait_after``).
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from eafix_capacity.cluster.applyerrors import CATEGORY_CLASSES, ApplyFailed, ObjectFailure, field_conflicts
from eafix_capacity.cluster.context import Target, load_target, require_write
from eafix_capacity.cluster.dynamic import dynamic_client
from eafix_capacity.cluster.errors import classify
from eafix_capacity.cluster.order import Phase, SourcedObject, phase_of, phases, sourced
from eafix_capacity.cluster.records import ApplyRecord, FieldChange, masked

if TYPE_CHECKING:
    from eafix_capacity.cluster.secrets import SecretValues

FIELD_MANAGER = "eafix-capacity"
_VOLATILE_METADATA = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "selfLink")


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


def field_changes(before: Any, after: Any, path: str = "", *, kind: str = "") -> list[FieldChange]:
    """Where ``before`` and ``after`` differ (pure), path by path: ``.spec.replicas``,
    ``.spec.template.spec.containers[0].image``; an added or removed key is its own path (its
    value ``None`` on the side that lacks it). A Secret's values are masked (``kind``)."""
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        out: list[FieldChange] = []
        for key in sorted(set(before) | set(after), key=str):
            sub = f"{path}.{key}"
            if key not in before or key not in after:
                out.append(FieldChange(sub, masked(kind, sub, before.get(key)), masked(kind, sub, after.get(key))))
            else:
                out.extend(field_changes(before[key], after[key], sub, kind=kind))
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [c for i, (b, a) in enumerate(zip(before, after))
                for c in field_changes(b, a, f"{path}[{i}]", kind=kind)]
    if before == after:
        return []
    where = path or "."
    return [FieldChange(where, masked(kind, where, before), masked(kind, where, after))]


def changed_paths(before: Any, after: Any, path: str = "") -> list[str]:
    """The field paths where ``before`` and ``after`` differ (pure): see :func:`field_changes`."""
    return [c.path for c in field_changes(before, after, path)]


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


def check_buildable(objects: Iterable[Any]) -> None:
    """Raise :class:`ApplyFailed` (phase ``build``) for objects that cannot be applied: no
    apiVersion, kind or name (pure)."""
    failures = []
    for item in map(sourced, objects):
        missing = [f for f, v in (("apiVersion", item.api_version), ("kind", item.kind),
                                  ("metadata.name", item.name)) if not v]
        if missing:
            failures.append(ObjectFailure("invalid", str(item.source), item.ref(), None,
                                          f"missing {', '.join(missing)}: cannot be applied"))
    if failures:
        raise ApplyFailed("build", failures, [])


def build_requests(objects: Iterable[Any]) -> list[_Request]:
    """Every request of the apply, in phase order; a malformed object raises
    :class:`ApplyFailed` (phase ``build``) before anything is sent (pure)."""
    items = [sourced(o) for o in objects]
    check_buildable(items)
    return [_Request(phase, item, copy.deepcopy(dict(item.obj))) for phase in phases(items) for item in phase.objects]


# --- sending ---------------------------------------------------------------------------------------

def apply(objects: Iterable[Any], *, context: str | None = None, kubeconfig: str | None = None,
          target: Target | None = None, api_client: Any = None, dry_run: bool = True,
          field_manager: str = FIELD_MANAGER, force_conflicts: bool = False, prune: bool = False,
          secrets: SecretValues | None = None, external_secrets: bool = False, context_given: bool | None = None,
          yes: bool = False, confirm: Callable[[str], bool] | None = None,
          after_phase: Callable[[Phase, list[ApplyRecord]], None] | None = None) -> list[ApplyRecord]:
    """Apply ``objects`` (mappings, or ``LoadedObject`` s that keep file and document) phase by
    phase to the cluster of ``context`` (loaded from ``kubeconfig`` as kubectl finds it), or of
    ``target`` through ``api_client`` when a caller has loaded them; return one record per object.

    A real apply (``dry_run=False``) first passes :func:`~eafix_capacity.cluster.context.require_write`:
    an explicit context (``context``, or ``context_given=True`` with a ``target``), and ``yes`` or
    ``confirm`` for a cluster that is not the sim; a dry run needs none. Secrets
    (:mod:`eafix_capacity.cluster.secrets`): the template's placeholders are filled from
    ``secrets`` (``read_secret_values``), the External Secrets variant replaces the template when
    ``external_secrets``; a placeholder left is refused on a cluster that is not the sim
    (``SecretsNotSupplied``; a dry run there skips that Secret and says why). ``after_phase`` is
    called after each phase that succeeded (the rollout wait goes there); ``prune`` then deletes
    what an earlier apply made and this one no longer has (:mod:`eafix_capacity.cluster.prune`).
    Raises an :class:`ApplyFailed` subclass for a refused phase, a ``TargetError`` when the
    cluster cannot be reached."""
    if (target is None) != (api_client is None):
        raise TypeError("give target and api_client together, or neither (context= loads them)")
    if target is not None and context is not None and context != target.context:
        raise ValueError(f'context "{context}" is not the target\'s context "{target.context}"')
    given = context is not None if context_given is None else context_given
    items = [sourced(o) for o in objects]
    check_buildable(items)  # a malformed object is refused before the cluster is even contacted
    loaded = target is None
    if target is None:
        target, api_client = load_target(kubeconfig=kubeconfig, context=context)
    try:
        return _apply(items, api_client=api_client, target=target, dry_run=dry_run, field_manager=field_manager,
                      force_conflicts=force_conflicts, prune=prune, secrets=secrets,
                      external_secrets=external_secrets, context_given=given, yes=yes, confirm=confirm,
                      after_phase=after_phase)
    finally:
        if loaded:
            api_client.close()


def _skipped(item: SourcedObject, note: str, *, dry_run: bool) -> ApplyRecord:
    return ApplyRecord(phase=phase_of(item), file=item.source.file, document=item.source.document, kind=item.kind,
                       api_version=item.api_version, namespace=item.namespace, name=item.name, outcome="skipped",
                       dry_run=dry_run, note=note)


def _apply(items: list[SourcedObject], *, api_client: Any, target: Target, dry_run: bool, field_manager: str,
           force_conflicts: bool, prune: bool, secrets: SecretValues | None, external_secrets: bool,
           context_given: bool, yes: bool,
           confirm: Callable[[str], bool] | None,
           after_phase: Callable[[Phase, list[ApplyRecord]], None] | None) -> list[ApplyRecord]:
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    from eafix_capacity.cluster import secrets as secret_values

    # a dry run against a real cluster shows everything else; the Secret a real apply would refuse is skipped
    prepared = secret_values.prepare(items, is_sim=target.is_sim or dry_run, values=secrets,
                                     external=external_secrets)
    skipped = [_skipped(item, reason, dry_run=dry_run) for item, reason in prepared.skipped]
    kept = []
    for item in prepared.objects:
        held = secret_values.placeholders([item]) if dry_run and not target.is_sim else []
        if not held:
            kept.append(item)
            continue
        skipped.append(_skipped(item, f"holds placeholders for {', '.join(sorted(p.key for p in held))}: a real "
                                      "apply to a cluster that is not the sim refuses it without --secrets-from or "
                                      "--external-secrets", dry_run=dry_run))
    requests = build_requests(kept)
    if not dry_run:
        require_write(target, context_given=context_given, yes=yes, confirm=confirm)
    try:
        client = dynamic_client(api_client)
    except Exception as e:
        raise classify(e, context=target.context, server=target.server, user=target.user or None,
                       auth=target.auth, cluster=target.cluster) from e
    # in a dry run nothing is created: objects in a namespace, or of a kind, that this apply creates
    # cannot be checked by the server, and are reported as created without its check
    new_namespaces: set[str] = set()
    new_kinds: set[tuple[str, str]] = set()
    records: list[ApplyRecord] = list(skipped)
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
                       namespace: str | None = item.namespace, changes: tuple[FieldChange, ...] = ()) -> ApplyRecord:
                return ApplyRecord(phase=name, file=item.source.file, document=item.source.document, kind=item.kind,
                                   api_version=item.api_version, namespace=namespace, name=item.name,
                                   outcome=outcome, diff=diff, resource_version=None if dry_run else rv,
                                   dry_run=dry_run, note=note, changes=changes)

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
                if status == 401 or (status == 403 and category == "refused"):
                    # who the user is, not what the object is: RBAC (or an expired credential) refuses every write
                    raise classify(e, context=target.context, server=target.server, user=target.user or None,
                                   auth=target.auth, cluster=target.cluster) from e
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
                changes = tuple(field_changes(normalized(before), normalized(live), kind=item.kind))
                records.append(record("changed" if changes else "unchanged", tuple(c.path for c in changes), rv,
                                      namespace=namespace, changes=changes))
        if failures:
            cls = CATEGORY_CLASSES[failures[0].category]
            raise cls(name, failures, records, context=target.context, dry_run=dry_run)
        if after_phase is not None:
            after_phase(phase, records[start:])
    if prune:
        from eafix_capacity.cluster.prune import prune as prune_objects

        records.extend(prune_objects(records, api_client=api_client, target=target, dry_run=dry_run,
                                     field_manager=field_manager))
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
