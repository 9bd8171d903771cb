"""Prune: which live objects an apply of the kit deletes (pure, on small dicts), and the dry run,
the real deletion with its garbage collection, and what is left alone, against one sim."""
from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any, Iterator

import pytest

import eafix_capacity.cluster.prune as prune_module
from eafix_capacity.cluster.apply import FIELD_MANAGER, apply
from eafix_capacity.cluster.context import Target, load_target
from eafix_capacity.cluster.errors import Unreachable
from eafix_capacity.cluster.prune import (L_MANAGED_BY, MANAGED_BY, PRUNE_KINDS, SELECTOR, Candidate, group_of,
                                          list_items, prune, prune_candidates, touched_namespaces)
from eafix_capacity.cluster.records import ApplyRecord
from eafix_capacity.manifests.load import load_manifests
from eafix_capacity.manifests.render import L_MANAGED_BY as RENDERED_LABEL
from eafix_capacity.manifests.render import MANAGED_BY as RENDERED_VALUE
from eafix_capacity.sim.testing import kubectl_on

ROOT = Path(__file__).resolve().parents[2]
LABELS = {L_MANAGED_BY: MANAGED_BY}


def _live(kind: str = "ConfigMap", name: str = "a", namespace: str | None = "ns", *, api_version: str = "v1",
          labels: dict[str, str] | None = None, managers: tuple[tuple[str, str], ...] = ((FIELD_MANAGER, "Apply"),),
          **meta: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": LABELS if labels is None else labels,
                                "managedFields": [{"manager": m, "operation": op, "apiVersion": api_version}
                                                  for m, op in managers], **meta}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata}


def _refs(candidates: list[Candidate]) -> list[str]:
    return [c.ref for c in candidates]


def _rec(kind: str, name: str, namespace: str | None, *, api_version: str = "v1",
         outcome: str = "unchanged") -> ApplyRecord:
    return ApplyRecord(phase="configmaps", file="", document=None, kind=kind, api_version=api_version,
                       namespace=namespace, name=name, outcome=outcome)


APPLIED_IN_NS = [("v1", "ConfigMap", "ns", "still-there")]


# --- pure --------------------------------------------------------------------------------------------

def test_the_label_and_manager_are_the_renderers_and_applys():
    assert (L_MANAGED_BY, MANAGED_BY) == (RENDERED_LABEL, RENDERED_VALUE)
    assert prune_module.FIELD_MANAGER == FIELD_MANAGER
    assert SELECTOR == "app.kubernetes.io/managed-by=eafix-capacity"


def test_every_kind_the_renderer_writes_is_pruned_or_deliberately_left_out():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        objects = [o.obj for d in ("recommended", "recommended-istio")
                   for o in load_manifests(ROOT / "manifests" / d).objects]
    rendered = {(group_of(o["apiVersion"]), o["kind"]) for o in objects}
    pruned = {(k.group, k.kind) for k in PRUNE_KINDS}
    # StorageClass: cluster-scoped and shared; ExternalSecret/SecretStore: see PRUNE_KINDS
    left_out = {("storage.k8s.io", "StorageClass"), ("external-secrets.io", "ExternalSecret"),
                ("external-secrets.io", "SecretStore")}
    assert rendered - pruned == left_out
    # what controllers make from the kit's labelled templates is never listed (kubectl's list has them)
    assert not pruned & {("", "Pod"), ("apps", "ReplicaSet"), ("", "Endpoints"), ("", "PersistentVolume"),
                         ("discovery.k8s.io", "EndpointSlice")}


def test_an_object_the_kit_applied_and_no_longer_applies_is_deleted():
    live = [_live(name="still-there"), _live(name="dropped"),
            _live("Deployment", "web", api_version="apps/v1"), _live("PodDisruptionBudget", "web",
                                                                     api_version="policy/v1")]
    delete, kept = prune_candidates(live, APPLIED_IN_NS, field_manager=FIELD_MANAGER)
    assert _refs(delete) == ["ConfigMap ns/dropped", "Deployment ns/web", "PodDisruptionBudget ns/web"]
    assert kept == []
    assert delete[1].api_version == "apps/v1" and delete[1].group == "apps"
    assert delete[0].reason == "not in the applied set; last applied by eafix-capacity"


def test_the_applied_set_is_compared_by_group_kind_namespace_and_name_not_version():
    live = [_live("HorizontalPodAutoscaler", "web", api_version="autoscaling/v2"),
            _live("Deployment", "web", api_version="apps/v1"),
            _live("Service", "web"), _live(name="web", namespace="other")]
    applied = [("autoscaling/v1", "HorizontalPodAutoscaler", "ns", "web"), ("apps", "Deployment", "ns", "web"),
               ("v1", "ConfigMap", "other", "web-2")]
    delete, _ = prune_candidates(live, applied, field_manager=FIELD_MANAGER)
    # the same name of another kind, or in another namespace, is another object
    assert _refs(delete) == ["Service ns/web", "ConfigMap other/web"]
    records = [_rec("HorizontalPodAutoscaler", "web", "ns", api_version="autoscaling/v1"),
               _rec("Service", "web", "ns", outcome="skipped"), _rec("ConfigMap", "web", "other", outcome="created")]
    delete, _ = prune_candidates(live, records, field_manager=FIELD_MANAGER)
    assert _refs(delete) == ["Deployment ns/web"]


def test_prunes_own_records_are_not_part_of_the_applied_set():
    live = [_live(name="gone"), _live(name="still-there")]
    earlier = [_rec("ConfigMap", "gone", "ns", outcome="pruned"), _rec("ConfigMap", "still-there", "ns")]
    delete, _ = prune_candidates(live, earlier, field_manager=FIELD_MANAGER)
    assert _refs(delete) == ["ConfigMap ns/gone"]


def test_only_the_namespaces_of_the_applied_set_are_looked_in():
    live = [_live(name="x", namespace="ns"), _live(name="x", namespace="elsewhere")]
    assert touched_namespaces(APPLIED_IN_NS + [("v1", "Namespace", None, "n")]) == {"ns"}
    delete, _ = prune_candidates(live, APPLIED_IN_NS, field_manager=FIELD_MANAGER)
    assert _refs(delete) == ["ConfigMap ns/x"]
    assert prune_candidates(live, [], field_manager=FIELD_MANAGER) == ([], [])


def test_kinds_outside_the_allowlist_are_never_candidates():
    live = [_live("Pod", "web-1"), _live("ReplicaSet", "web-abc", api_version="apps/v1"), _live("Endpoints", "web"),
            _live("PersistentVolume", "pv-1", None), _live("StorageClass", "fast", None,
                                                             api_version="storage.k8s.io/v1"),
            _live("ExternalSecret", "s", api_version="external-secrets.io/v1beta1"),
            _live("Deployment", "web", api_version="extensions/v1beta1"),  # another group's Deployment
            _live("ConfigMap", "nameless")]
    live[-1]["metadata"]["name"] = ""
    assert prune_candidates(live, APPLIED_IN_NS, field_manager=FIELD_MANAGER) == ([], [])
    custom = _live("Gateway", "gw", api_version="networking.istio.io/v1beta1")
    assert _refs(prune_candidates([custom], APPLIED_IN_NS, field_manager=FIELD_MANAGER)[0]) == ["Gateway ns/gw"]


def test_only_labelled_objects_the_kit_applied_are_candidates():
    live = [_live(name="no-label", labels={}),
            _live(name="other-value", labels={L_MANAGED_BY: "helm"}),
            _live(name="created", managers=(("kubectl-create", "Update"), ("kubectl-label", "Update"))),
            _live(name="kubectl-apply", managers=(("kubectl", "Apply"),)),
            # the kit's manager through an update, not an apply (a user's script with its name)
            _live(name="updated", managers=((FIELD_MANAGER, "Update"),)),
            _live(name="no-managed-fields", managers=()),
            _live(name="shared", managers=(("kubectl", "Apply"), (FIELD_MANAGER, "Apply")))]
    delete, kept = prune_candidates(live, APPLIED_IN_NS, field_manager=FIELD_MANAGER)
    assert _refs(delete) == ["ConfigMap ns/shared"] and kept == []
    delete, _ = prune_candidates(live, APPLIED_IN_NS, field_manager="kubectl")
    assert _refs(delete) == ["ConfigMap ns/kubectl-apply", "ConfigMap ns/shared"]


def test_controlled_objects_and_ones_being_deleted_are_left_alone():
    owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u1"}
    live = [_live(name="controlled", ownerReferences=[{**owner, "controller": True}]),
            _live(name="owned-not-controlled", ownerReferences=[{**owner, "controller": False}]),
            _live(name="owned-no-flag", ownerReferences=[owner]),
            _live(name="terminating", deletionTimestamp="2026-01-01T00:00:00Z")]
    delete, _ = prune_candidates(live, APPLIED_IN_NS, field_manager=FIELD_MANAGER)
    assert _refs(delete) == ["ConfigMap ns/owned-not-controlled", "ConfigMap ns/owned-no-flag"]


def test_claims_and_namespaces_are_kept_with_the_reason_and_the_command():
    live = [_live("PersistentVolumeClaim", "postgres-data"), _live("Namespace", "old-ns", None),
            _live("PersistentVolumeClaim", "unlabelled", labels={}),
            _live("PersistentVolumeClaim", "applied")]
    delete, kept = prune_candidates(live, APPLIED_IN_NS + [("v1", "PersistentVolumeClaim", "ns", "applied")],
                                    field_manager=FIELD_MANAGER, context="prod")
    assert delete == [] and _refs(kept) == ["PersistentVolumeClaim ns/postgres-data", "Namespace old-ns"]
    pvc, namespace = kept
    assert pvc.command == "kubectl --context prod delete pvc -n ns postgres-data"
    assert "destroys the data on its volume" in pvc.reason and "PostgreSQL" in pvc.reason
    assert pvc.reason.endswith("to delete it by hand: kubectl --context prod delete pvc -n ns postgres-data")
    assert namespace.command == "kubectl --context prod delete namespace old-ns"
    assert "deletes everything in it" in namespace.reason
    _, kept = prune_candidates(live[:1], APPLIED_IN_NS, field_manager=FIELD_MANAGER)
    assert kept[0].command == "kubectl delete pvc -n ns postgres-data"


def test_list_items_carry_the_kind_a_real_servers_list_leaves_out():
    # a real API server's DeploymentList: its items have no apiVersion and kind (the sim's have them)
    listed = {"kind": "DeploymentList", "apiVersion": "apps/v1", "metadata": {"resourceVersion": "9"},
              "items": [{"metadata": {"name": "web", "namespace": "ns", "labels": LABELS,
                                      "managedFields": [{"manager": FIELD_MANAGER, "operation": "Apply"}]}}]}
    deployment = next(k for k in PRUNE_KINDS if k.kind == "Deployment")
    items = list_items(listed, deployment)
    assert [(i["apiVersion"], i["kind"], i["metadata"]["name"]) for i in items] == [("apps/v1", "Deployment", "web")]
    assert _refs(prune_candidates(items, APPLIED_IN_NS, field_manager=FIELD_MANAGER)[0]) == ["Deployment ns/web"]
    assert list_items({"items": None}, deployment) == []


def test_group_of_reads_api_versions_and_bare_groups():
    assert [group_of(v) for v in ("v1", "apps/v1", "apps", "", "v1beta1", "networking.istio.io/v1beta1")] == [
        "", "apps", "apps", "", "", "networking.istio.io"]


# --- against one sim: each test applies its own objects into namespaces of its own ------------------

def _cm(name: str, namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace,
                                                                  "labels": dict(LABELS)}, "data": {"k": "v"}}


def _objects(ns: str, other_ns: str) -> list[dict[str, Any]]:
    labels = {**LABELS, "app.kubernetes.io/name": "web"}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "web", "namespace": ns, "labels": labels},
                  "spec": {"replicas": 2, "selector": {"matchLabels": {"app.kubernetes.io/name": "web"}},
                           "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                               {"name": "web", "image": "nginx:1.27",
                                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}}
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
           "metadata": {"name": "postgres-data", "namespace": ns, "labels": dict(LABELS)},
           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    namespaces = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": dict(LABELS)}}
                  for n in (ns, other_ns)]
    return [*namespaces, _cm("keep", ns), _cm("drop", ns), _cm("elsewhere", other_ns), deployment, pvc]


@pytest.fixture(scope="module")
def live(sim_cluster_module: Any) -> Iterator[tuple[Any, Target, Any]]:
    target, api = load_target(kubeconfig=sim_cluster_module.kubeconfig, context="eafix-sim")
    yield sim_cluster_module, target, api
    api.close()


@dataclasses.dataclass
class Scene:
    sim: Any
    target: Target
    api: Any
    ns: str
    other_ns: str
    applied: list[ApplyRecord]
    """The next apply's set: only the ConfigMap "keep" (not "drop", the Deployment, the claim, the
    namespaces, nor "elsewhere", whose namespace has nothing of the set)."""

    def mine(self, records: list[ApplyRecord]) -> list[tuple[str, str, str]]:
        """(kind, name, outcome) of the records of this scene's objects (other tests' namespaces
        are kept Namespaces too)."""
        return [(r.kind, r.name, r.outcome) for r in records
                if r.namespace in (self.ns, self.other_ns) or r.name in (self.ns, self.other_ns)]


@pytest.fixture()
def scene(live: Any, request: pytest.FixtureRequest) -> Scene:
    sim, target, api = live
    ns = "prune-" + request.node.name.removeprefix("test_").replace("_", "-")[:40].rstrip("-")
    other_ns = ns[:56] + "-other"
    records = apply(_objects(ns, other_ns), api_client=api, target=target, dry_run=False, context_given=True)
    kubectl_on(sim, "create", "configmap", "by-hand", "-n", ns, "--from-literal=k=v")
    kubectl_on(sim, "label", "configmap", "by-hand", "-n", ns, SELECTOR)
    sim.settle()
    return Scene(sim, target, api, ns, other_ns, [r for r in records if (r.kind, r.name) == ("ConfigMap", "keep")])


@pytest.fixture()
def calls(live: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, dict[str, Any], Any]]:
    """The requests the official client sends: (method, path, query, body)."""
    api = live[2]
    seen: list[tuple[str, str, dict[str, Any], Any]] = []
    real = api.param_serialize  # every request of the DynamicClient is built here, then sent

    def spy(method: str, resource_path: str, *args: Any, **kwargs: Any) -> Any:
        seen.append((method, resource_path, dict(kwargs.get("query_params") or []), kwargs.get("body")))
        return real(method, resource_path, *args, **kwargs)

    monkeypatch.setattr(api, "param_serialize", spy)
    return seen


def _names(sim: Any, kinds: str, namespace: str) -> set[str]:
    return set(kubectl_on(sim, "get", kinds, "-n", namespace, "-o", "name").stdout.split())


def _plural(kind: str) -> str:
    special = {"Ingress": "ingresses", "NetworkPolicy": "networkpolicies",
               "PodDisruptionBudget": "poddisruptionbudgets", "HorizontalPodAutoscaler": "horizontalpodautoscalers"}
    return special.get(kind, kind.lower() + "s")


KEPT_AND_DELETED = {"configmap/keep", "configmap/drop", "configmap/by-hand", "configmap/kube-root-ca.crt",
                    "deployment.apps/web", "persistentvolumeclaim/postgres-data"}


@pytest.mark.sim
@pytest.mark.kubectl
def test_a_dry_run_prune_reports_and_deletes_nothing(scene, calls):
    s = scene
    before = _names(s.sim, "cm,deploy,rs,pods,pvc", s.ns)
    assert KEPT_AND_DELETED <= before and sum(n.startswith("pod/web-") for n in before) == 2
    assert sum(n.startswith("replicaset.apps/web-") for n in before) == 1
    records = prune(s.applied, api_client=s.api, target=s.target, dry_run=True)
    assert s.mine(records) == [("ConfigMap", "drop", "pruned"), ("Deployment", "web", "pruned"),
                               ("Namespace", s.ns, "kept"), ("Namespace", s.other_ns, "kept"),
                               ("PersistentVolumeClaim", "postgres-data", "kept")]
    assert [r for r in records if r.outcome == "pruned"] == records[:2]
    assert all(r.dry_run and r.phase == "prune" and r.file == "" and r.document is None and r.resource_version is None
               for r in records)
    assert records[0].note == "not in the applied set; last applied by eafix-capacity"
    assert _names(s.sim, "cm,deploy,rs,pods,pvc", s.ns) == before
    deletes = [c for c in calls if c[0] == "DELETE"]
    assert [c[1] for c in deletes] == [f"/api/v1/namespaces/{s.ns}/configmaps/drop",
                                       f"/apis/apps/v1/namespaces/{s.ns}/deployments/web"]
    assert all(c[3] == {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background",
                        "dryRun": ["All"]} for c in deletes)


@pytest.mark.sim
@pytest.mark.kubectl
def test_prune_deletes_exactly_what_the_kit_applied_and_the_set_dropped(scene, calls):
    s = scene
    records = prune(s.applied, api_client=s.api, target=s.target, dry_run=False)
    assert [(r.kind, r.namespace, r.name, r.dry_run) for r in records if r.outcome == "pruned"] == [
        ("ConfigMap", s.ns, "drop", False), ("Deployment", s.ns, "web", False)]
    s.sim.settle()
    # the ReplicaSet and its pods go with the Deployment (garbage collection, Background); the
    # ConfigMap kubectl made and labelled, the claim and another namespace's object stay
    assert _names(s.sim, "cm,deploy,rs,pods,pvc", s.ns) == {
        "configmap/keep", "configmap/by-hand", "configmap/kube-root-ca.crt", "persistentvolumeclaim/postgres-data"}
    assert "configmap/elsewhere" in _names(s.sim, "cm", s.other_ns)
    lists = [c for c in calls if c[0] == "GET" and "labelSelector" in c[2]]
    assert all(c[2]["labelSelector"] == SELECTOR for c in lists)
    # one list per kind served (the sim serves no Istio CRDs here) in the one namespace, Namespaces once
    served = [k for k in PRUNE_KINDS if not k.group.endswith("istio.io")]
    assert sorted(c[1] for c in lists) == sorted(
        f"/api{'s/' + k.group if k.group else ''}/{k.version}/" + (f"namespaces/{s.ns}/" if k.namespaced else "")
        + _plural(k.kind) for k in served)
    assert [c[3]["propagationPolicy"] for c in calls if c[0] == "DELETE"] == ["Background", "Background"]
    assert all("dryRun" not in c[3] for c in calls if c[0] == "DELETE")


@pytest.mark.sim
@pytest.mark.kubectl
def test_the_claim_is_kept_with_its_reason_and_a_second_prune_deletes_nothing(scene, calls):
    s = scene
    prune(s.applied, api_client=s.api, target=s.target, dry_run=False)
    calls.clear()
    records = prune(s.applied, api_client=s.api, target=s.target, dry_run=False)
    assert s.mine(records) == [("Namespace", s.ns, "kept"), ("Namespace", s.other_ns, "kept"),
                               ("PersistentVolumeClaim", "postgres-data", "kept")]
    assert {r.outcome for r in records} == {"kept"} and [c for c in calls if c[0] == "DELETE"] == []
    pvc = records[-1]
    assert (pvc.namespace, pvc.api_version, pvc.dry_run) == (s.ns, "v1", False)
    assert "destroys the data on its volume" in pvc.note
    assert pvc.note.endswith(f"to delete it by hand: kubectl --context eafix-sim delete pvc -n {s.ns} postgres-data")
    assert "persistentvolumeclaim/postgres-data" in _names(s.sim, "pvc", s.ns)


@pytest.mark.sim
@pytest.mark.kubectl
def test_an_object_deleted_by_someone_else_before_prune_deletes_it_is_pruned(scene, monkeypatch):
    s = scene
    real = prune_module.prune_candidates

    def and_someone_deletes(*args: Any, **kwargs: Any) -> tuple[list[Candidate], list[Candidate]]:
        delete, kept = real(*args, **kwargs)
        kubectl_on(s.sim, "delete", "configmap", "drop", "-n", s.ns)
        return delete, kept

    monkeypatch.setattr(prune_module, "prune_candidates", and_someone_deletes)
    records = prune(s.applied, api_client=s.api, target=s.target, dry_run=False)
    assert [(r.name, r.outcome) for r in records if r.outcome == "pruned"] == [("drop", "pruned"), ("web", "pruned")]
    assert records[0].note.endswith("; already gone (deleted by someone else)")
    assert not records[1].note.endswith("(deleted by someone else)")


@pytest.fixture()
def unused_tcp_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.sim
def test_a_server_that_cannot_be_reached_is_a_target_error(live, unused_tcp_port):
    from kubernetes import client

    _, target, _ = live
    config = client.Configuration()
    config.host = f"http://127.0.0.1:{unused_tcp_port}"
    closed = dataclasses.replace(target, server=config.host)
    with client.ApiClient(config) as api, pytest.raises(Unreachable) as e:
        prune([_rec("ConfigMap", "keep", "ns")], api_client=api, target=closed, dry_run=True)
    assert str(e.value).startswith(f'context "eafix-sim": {config.host}: cannot connect: ')
