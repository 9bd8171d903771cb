"""ControllerRevisions for StatefulSets and DaemonSets (``kubectl rollout history`` and ``undo``).

As pkg/controller/history: one revision per distinct template, the current one renumbered
to the newest, the oldest pruned beyond ``revisionHistoryLimit``.
"""
from __future__ import annotations

from typing import Mapping

from eafix_capacity.sim import resources as R
from eafix_capacity.sim.apierror import ConflictError
from eafix_capacity.sim.controllers.common import controller_of, deep_copy, ns_name, owner_ref, semantic
from eafix_capacity.sim.controllers.context import Context, Snapshot


def sync_revisions(ctx: Context, owner: Mapping, kind: str, current: str, snap: Snapshot, *,
                   keep: str | None = None) -> None:
    """ControllerRevisions of a StatefulSet or DaemonSet, what ``kubectl rollout history``
    and ``rollout undo`` read: one per distinct template, the current one the newest, the
    oldest pruned beyond ``revisionHistoryLimit``. ``data`` is the strategic merge patch
    that restores the template, as the real controllers store it."""
    ns, name = ns_name(owner)
    uid = owner["metadata"]["uid"]
    template = (owner.get("spec") or {}).get("template") or {}
    owned = [cr for cr in snap.revisions if cr["metadata"].get("namespace") == ns
             and (controller_of(cr) or {}).get("uid") == uid]
    top = max((int(cr.get("revision") or 0) for cr in owned), default=0)
    mine = next((cr for cr in owned if cr["metadata"]["name"] == current), None)
    if mine is None:
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels["controller.kubernetes.io/hash"] = current.rsplit("-", 1)[-1]
        body = {"apiVersion": "apps/v1", "kind": "ControllerRevision",
                "metadata": {"name": current, "namespace": ns, "labels": labels,
                             "ownerReferences": [owner_ref(owner, kind)]},
                "data": {"spec": {"template": {**semantic(template), "$patch": "replace"}}},
                "revision": top + 1}
        try:
            ctx.store.create(R.CONTROLLERREVISION, body)
        except ConflictError:
            pass
    elif int(mine.get("revision") or 0) < top:
        bumped = deep_copy(mine)
        bumped["revision"] = top + 1
        ctx.update(R.CONTROLLERREVISION, bumped)
    limit = int((owner.get("spec") or {}).get("revisionHistoryLimit", 10))
    old = sorted((cr for cr in owned if cr["metadata"]["name"] not in (current, keep)),
                 key=lambda cr: int(cr.get("revision") or 0))
    for cr in old[:max(0, len(old) - limit)]:
        ctx.delete(R.CONTROLLERREVISION, cr)
