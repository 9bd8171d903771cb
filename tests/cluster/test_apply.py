"""Ordering (pure) and server-side apply against one sim: dry run, apply, re-apply, drift,
conflicts with another field manager, and a refused phase that stops the apply."""
from __future__ import annotations

import copy
import json
import pickle
import warnings
from pathlib import Path
from typing import Any, Iterator

import pytest

from eafix_capacity.cluster.apply import apply, categorize, changed_paths, normalized
from eafix_capacity.cluster.applyerrors import (ApplyConflict, ApplyFailed, FieldConflict, InvalidObject,
                                                MissingKind, NamespaceTerminating, QuotaExceeded,
                                                field_conflicts)
from eafix_capacity.cluster.context import load_target
from eafix_capacity.cluster.errors import WriteNotConfirmed
from eafix_capacity.cluster.order import PHASE_NAMES, phases
from eafix_capacity.manifests.load import LoadedObject, load_manifests
from eafix_capacity.sim.testing import kubectl_on

ROOT = Path(__file__).resolve().parents[2]
NS = "eafix-trading"


def _load(name: str, *, external_secrets: bool = False) -> list[LoadedObject]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        objects = load_manifests(ROOT / "manifests" / name).objects
    # the External Secrets variant needs the operator's CRDs (apply's own choice of variant: test_apply_cmd.py)
    return [o for o in objects if external_secrets or "external-secrets" not in o.file]


def _cm(name: str, namespace: str = NS) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": {"k": "v"}}


@pytest.fixture(scope="module")
def live(sim_cluster_module: Any) -> Iterator[tuple[Any, Any, Any]]:
    target, api = load_target(kubeconfig=sim_cluster_module.kubeconfig, context="eafix-sim")
    yield sim_cluster_module, target, api
    api.close()


def _names(sim: Any, *kinds: str) -> set[str]:
    out = kubectl_on(sim, "get", ",".join(kinds), "-A", "-o", "name").stdout
    return set(out.split())


# --- pure --------------------------------------------------------------------------------------------

def test_phases_follow_the_seed_order_and_keep_the_source():
    objs = _load("recommended-istio", external_secrets=True)
    got = phases(objs)
    names = [p.name for p in got]
    assert names == [n for n in PHASE_NAMES if n in names]
    assert names[:2] == ["namespaces", "storage"] and names[-1] == "custom-resources"
    by = {p.name: p for p in got}
    assert {o.name for o in by["infrastructure"].objects} == {"redis", "postgres"}
    assert {o.kind for o in by["infrastructure"].objects} == {"StatefulSet", "Service"}
    assert by["infrastructure"].wait_after and not by["workloads"].wait_after
    assert by["namespaces"].objects[0].kind == "Namespace"
    assert {o.kind for o in by["secrets"].objects} == {"Secret", "SecretStore", "ExternalSecret"}
    assert {o.obj["apiVersion"].split("/")[0] for o in by["custom-resources"].objects} == {
        "networking.istio.io", "security.istio.io"}
    assert "redis" not in {o.name for o in by["services"].objects}
    first = by["namespaces"].objects[0].source
    assert first.file.endswith("namespaces/eafix-trading.yml") and first.document == 0
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "x"}}
    assert phases([_cm("a"), crd])[0].name == "crds"
    assert str(phases([_cm("a")])[0].objects[0].source) == "(rendered in memory)"


def test_changed_paths_ignore_what_the_server_owns():
    before = {"metadata": {"name": "a", "resourceVersion": "1", "generation": 1, "managedFields": [{}]},
              "spec": {"replicas": 2, "c": [{"image": "x"}]}, "status": {"ready": 1}}
    after = copy.deepcopy(before)
    after["metadata"].update(resourceVersion="2", generation=2)
    after["status"] = {"ready": 2}
    assert changed_paths(normalized(before), normalized(after)) == []
    after["spec"]["c"][0]["image"] = "y"
    after["metadata"]["annotations"] = {"a": "b"}
    assert changed_paths(normalized(before), normalized(after)) == [".metadata.annotations", ".spec.c[0].image"]


def test_refusals_are_told_apart_by_the_api_servers_own_texts():
    # the texts of NamespaceLifecycle and ResourceQuota admission (plugin/pkg/admission), and
    # apimachinery's merge.Conflicts causes
    terminating = {"message": 'configmaps "late" is forbidden: unable to create new content in namespace doomed '
                              "because it is being terminated"}
    quota = {"message": 'pods "x" is forbidden: exceeded quota: q, requested: cpu=2, used: cpu=1, limited: cpu=2'}
    rbac = {"message": 'configmaps "x" is forbidden: User "u" cannot patch resource "configmaps"'}
    conflict = {"details": {"causes": [
        {"reason": "FieldManagerConflict", "message": 'conflict with "kubectl" using apps/v1',
         "field": ".spec.replicas"},
        {"reason": "FieldManagerConflict",
         "message": 'conflict with "kube-controller-manager" with subresource "scale" using apps/v1',
         "field": ".spec.template.spec.containers[name=\"a\"].image"}]}}
    assert categorize(403, terminating) == "namespace-terminating"
    assert categorize(403, quota) == "quota"
    assert categorize(403, rbac) == "refused"
    assert categorize(422, {"message": "x"}) == "invalid"
    assert categorize(409, conflict) == "conflict"
    assert categorize(409, {"message": "the object has been modified"}) == "refused"
    assert field_conflicts(conflict) == [FieldConflict(".spec.replicas", "kubectl"),
                                         FieldConflict('.spec.template.spec.containers[name="a"].image',
                                                       "kube-controller-manager", "scale")]
    assert field_conflicts({"message": "no details"}) == []


@pytest.mark.sim
@pytest.mark.kubectl
def test_a_nameless_object_stops_the_apply_before_anything_is_sent(live):
    _, target, api = live
    with pytest.raises(ApplyFailed) as e:
        apply([_cm("never-sent"), {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}],
              api_client=api, target=target)
    assert e.value.phase == "build" and e.value.records == []
    assert "missing metadata.name" in str(e.value)
    again = pickle.loads(pickle.dumps(e.value))
    assert type(again) is ApplyFailed and str(again) == str(e.value)


# --- against the sim, in order: each test builds on the state the previous left ------------------------

@pytest.mark.sim
@pytest.mark.kubectl
def test_dry_run_changes_nothing(live):
    sim, target, api = live
    kinds = ("namespaces", "deployments", "statefulsets", "services", "configmaps", "pvc")
    before = _names(sim, *kinds)
    records = apply(_load("recommended"), api_client=api, target=target, dry_run=True)
    assert _names(sim, *kinds) == before
    assert f"namespace/{NS}" not in before
    assert {r.outcome for r in records} == {"created"} and all(r.resource_version is None for r in records)
    quota = next(r for r in records if r.kind == "ResourceQuota")
    assert "created by this apply" in quota.note


@pytest.mark.sim
@pytest.mark.kubectl
def test_a_real_apply_needs_an_explicit_context(live, monkeypatch):
    sim, target, api = live
    with pytest.raises(WriteNotConfirmed, match="explicit context"):
        apply([_cm("guarded")], api_client=api, target=target, dry_run=False)
    # by context name, loaded as kubectl finds it: the current context is read, never written to by default
    monkeypatch.setenv("KUBECONFIG", str(sim.kubeconfig))
    with pytest.raises(WriteNotConfirmed, match="explicit context"):
        apply([_cm("guarded", "default")], dry_run=False)
    [record] = apply([_cm("guarded", "default")], context="eafix-sim", dry_run=False)
    assert (record.outcome, record.namespace, record.dry_run) == ("created", "default", False)
    assert "configmap/guarded" in kubectl_on(sim, "get", "configmap", "-n", "default", "-o", "name").stdout
    with pytest.raises(TypeError, match="give target and api_client together"):
        apply([_cm("guarded")], target=target)
    with pytest.raises(ValueError, match='context "prod" is not the target\'s context "eafix-sim"'):
        apply([_cm("guarded")], target=target, api_client=api, context="prod")


@pytest.mark.sim
@pytest.mark.kubectl
def test_a_real_apply_creates_everything_in_phase_order(live):
    sim, target, api = live
    objects = _load("recommended")
    seen: list[str] = []
    records = apply(objects, api_client=api, target=target, dry_run=False, context_given=True,
                    after_phase=lambda phase, recs: seen.append(phase.name))
    assert len(records) == len(objects) and {r.outcome for r in records} == {"created"}
    order = [r.phase for r in records]
    assert order == sorted(order, key=PHASE_NAMES.index)
    assert seen == list(dict.fromkeys(order))
    assert all(r.resource_version for r in records)
    first_infra = order.index("infrastructure")
    assert {records[i].name for i in range(first_infra, first_infra + 4)} == {"redis", "postgres"}
    assert records[0].kind == "Namespace" and records[0].file.endswith("namespaces/eafix-trading.yml")
    assert "deployment.apps/data-ingestor" in kubectl_on(sim, "get", "deploy", "-n", NS, "-o", "name").stdout
    managers = kubectl_on(sim, "get", "deploy/risk-manager", "-n", NS, "--show-managed-fields",
                          "-o", "jsonpath={.metadata.managedFields[*].manager}").stdout
    assert "eafix-capacity" in managers.split()


@pytest.mark.sim
@pytest.mark.kubectl
def test_a_second_apply_reports_every_object_unchanged(live):
    _, target, api = live
    records = apply(_load("recommended"), api_client=api, target=target, dry_run=False, context_given=True)
    assert [(r.kind, r.name, r.diff) for r in records if r.outcome != "unchanged"] == []


@pytest.mark.sim
@pytest.mark.kubectl
def test_a_changed_object_reports_the_changed_fields(live):
    sim, target, api = live
    deployment = next(o for o in _load("recommended") if o.obj["kind"] == "Deployment"
                      and o.obj["metadata"]["name"] == "risk-manager")
    edited = copy.deepcopy(deployment.obj)
    edited["metadata"].setdefault("annotations", {})["eafix.io/note"] = "edited"
    edited["spec"]["replicas"] = edited["spec"]["replicas"] + 1
    dry = apply([LoadedObject(edited, deployment.file, deployment.document, deployment.line)],
                api_client=api, target=target, dry_run=True)
    assert dry[0].outcome == "changed"
    assert {".metadata.annotations.eafix.io/note", ".spec.replicas"} <= set(dry[0].diff)
    assert dry[0].file == deployment.file and dry[0].document == deployment.document
    assert kubectl_on(sim, "get", "deploy/risk-manager", "-n", NS, "-o",
                      "jsonpath={.spec.replicas}").stdout == str(deployment.obj["spec"]["replicas"])
    real = apply([edited], api_client=api, target=target, dry_run=False, context_given=True)
    assert real[0].outcome == "changed" and ".spec.replicas" in real[0].diff and real[0].resource_version
    assert kubectl_on(sim, "get", "deploy/risk-manager", "-n", NS, "-o",
                      "jsonpath={.spec.replicas}").stdout == str(edited["spec"]["replicas"])


@pytest.mark.sim
@pytest.mark.kubectl
def test_a_conflict_with_another_manager_is_named_per_field_and_forced_only_when_asked(live):
    sim, target, api = live
    deployment = next(o for o in _load("recommended") if o.obj["kind"] == "Deployment"
                      and o.obj["metadata"]["name"] == "data-ingestor")
    kubectl_on(sim, "scale", "deployment/data-ingestor", "-n", NS, "--replicas=3")
    with pytest.raises(ApplyConflict) as e:
        apply([deployment], api_client=api, target=target, dry_run=False, context_given=True)
    assert [(c.field, c.manager, c.subresource) for c in e.value.conflicts] == [(".spec.replicas", "kubectl", "scale")]
    assert e.value.failures[0].source.endswith("deployments/trading-services.yml (document 0)")
    assert '.spec.replicas owned by "kubectl"' in str(e.value) and e.value.records == []
    again = pickle.loads(pickle.dumps(e.value))
    assert type(again) is ApplyConflict and str(again) == str(e.value) and again.conflicts == e.value.conflicts
    assert kubectl_on(sim, "get", "deploy/data-ingestor", "-n", NS, "-o", "jsonpath={.spec.replicas}").stdout == "3"
    records = apply([deployment], api_client=api, target=target, dry_run=False, context_given=True,
                    force_conflicts=True)
    assert records[0].outcome == "changed" and records[0].diff == (".spec.replicas",)
    assert kubectl_on(sim, "get", "deploy/data-ingestor", "-n", NS, "-o", "jsonpath={.spec.replicas}").stdout == str(
        deployment.obj["spec"]["replicas"])


@pytest.mark.sim
@pytest.mark.kubectl
def test_a_missing_crd_stops_the_apply_in_its_phase(live):
    _, target, api = live
    with pytest.raises(MissingKind) as e:
        apply(_load("recommended-istio", external_secrets=True), api_client=api, target=target, dry_run=True,
              external_secrets=True)
    assert e.value.phase == "secrets"
    assert {f.ref for f in e.value.failures} == {"SecretStore eafix-trading/eafix-vault",
                                                 "ExternalSecret eafix-trading/trading-secrets"}
    assert all("external-secret-store.yml (document" in f.source for f in e.value.failures)
    assert 'no matches for kind "SecretStore" in version "external-secrets.io/v1beta1"' in str(e.value)
    assert {r.phase for r in e.value.records} <= {"namespaces", "storage", "secrets"}
    with pytest.raises(MissingKind) as e:
        apply([o for o in _load("recommended-istio") if "/istio/" in o.file or o.obj["kind"] == "Namespace"],
              api_client=api, target=target, dry_run=True)
    assert e.value.phase == "custom-resources" and len(e.value.failures) >= 5
    assert [r.kind for r in e.value.records] == ["Namespace"]
    assert any(f.ref == "Gateway eafix-trading/eafix-gateway" and f.source.endswith("gateways/eafix-trading.yml "
                                                                                     "(document 0)")
               for f in e.value.failures)


@pytest.mark.sim
@pytest.mark.kubectl
def test_a_quota_refusal_stops_the_apply_and_nothing_after_it_is_sent(live):
    sim, target, api = live
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "too-big", "namespace": NS},
           "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "eafix-ssd",
                    "resources": {"requests": {"storage": "70Gi"}}}}
    with pytest.raises(QuotaExceeded) as e:
        apply([_cm("after-the-quota"), pvc], api_client=api, target=target, dry_run=False, context_given=True)
    assert e.value.phase == "storage" and e.value.records == []
    assert e.value.failures[0].status == 403 and "exceeded quota: eafix-trading-quota" in e.value.failures[0].message
    assert "configmap/after-the-quota" not in kubectl_on(sim, "get", "cm", "-n", NS, "-o", "name").stdout


@pytest.mark.sim
@pytest.mark.kubectl
def test_a_validation_error_stops_the_apply_after_the_phases_before_it(live):
    sim, target, api = live
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bad-port", "namespace": NS},
           "spec": {"ports": [{"port": 70000}]}}
    ingress = next(o for o in _load("recommended") if o.obj["kind"] == "Ingress")
    with pytest.raises(InvalidObject) as e:
        apply([ingress, bad, _cm("before-the-service")], api_client=api, target=target, dry_run=False,
              context_given=True)
    assert e.value.phase == "services" and e.value.failures[0].status == 422
    assert e.value.failures[0].ref == "Service eafix-trading/bad-port"
    assert [r.phase for r in e.value.records] == ["configmaps"]
    assert "configmap/before-the-service" in kubectl_on(sim, "get", "cm", "-n", NS, "-o", "name").stdout


@pytest.mark.sim
@pytest.mark.kubectl
def test_a_field_taken_by_kubectl_server_side_apply_conflicts_with_its_manager(live, tmp_path):
    sim, target, api = live
    owned = _cm("owned-by-the-kit")
    apply([owned], api_client=api, target=target, dry_run=False, context_given=True)
    taken = copy.deepcopy(owned)
    taken["data"]["k"] = "kubectl's"
    kubectl_on(sim, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps(taken))
    with pytest.raises(ApplyConflict) as e:
        apply([owned], api_client=api, target=target, dry_run=True)
    assert [(c.field, c.manager, c.subresource) for c in e.value.conflicts] == [(".data.k", "kubectl", "")]
    assert e.value.failures[0].source == "(rendered in memory)"


@pytest.mark.sim
@pytest.mark.kubectl
def test_an_object_without_a_namespace_goes_to_the_contexts_namespace(live):
    sim, target, api = live
    records = apply([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "no-namespace"}},
                     {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fresh", "namespace": "x"}}],
                    api_client=api, target=target, dry_run=True)
    assert [(r.kind, r.namespace, r.outcome) for r in records] == [
        ("Namespace", None, "created"), ("ConfigMap", target.namespace, "created")]


@pytest.mark.sim
@pytest.mark.kubectl
def test_a_namespace_being_deleted_stops_the_apply(live, monkeypatch):
    import eafix_capacity.sim.store as store

    sim, target, api = live
    # the sim ends a namespace's Terminating phase after this many seconds; long enough to apply into it
    monkeypatch.setattr(store, "NAMESPACE_TERMINATION_SECONDS", 30.0)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}}
    apply([namespace], api_client=api, target=target, dry_run=False, context_given=True)
    kubectl_on(sim, "delete", "namespace", "doomed", "--wait=false")
    with pytest.raises(NamespaceTerminating) as e:
        apply([_cm("late", "doomed"), {**_cm("later", "doomed"), "kind": "Service",
                                       "spec": {"ports": [{"port": 80}]}}],
              api_client=api, target=target, dry_run=False, context_given=True)
    assert e.value.phase == "configmaps" and e.value.records == []
    failure = e.value.failures[0]
    assert (failure.status, failure.ref) == (403, "ConfigMap doomed/late")
    assert "unable to create new content in namespace doomed because it is being terminated" in failure.message
    assert "Service doomed/later" not in str(e.value)


@pytest.mark.sim
@pytest.mark.kubectl
def test_the_mesh_objects_apply_after_their_crds(live):
    from eafix_capacity.manifests.crds import stand_in_crds

    sim, target, api = live
    crds = stand_in_crds(groups=("networking.istio.io", "security.istio.io"))
    mesh = [o for o in _load("recommended-istio") if "/istio/" in o.file]
    # given after the objects that need them: the order puts the CRDs first
    dry = apply([*mesh, *crds], api_client=api, target=target, dry_run=True)
    assert [r.phase for r in dry] == ["crds"] * len(crds) + ["custom-resources"] * len(mesh)
    assert all(r.outcome == "created" and "its CRD is created by this apply" in r.note
               for r in dry if r.phase == "custom-resources")
    assert "gateway" not in kubectl_on(sim, "get", "crd", "-o", "name").stdout
    real = apply([*mesh, *crds], api_client=api, target=target, dry_run=False, context_given=True)
    assert {r.outcome for r in real} == {"created"} and all(r.resource_version and not r.note for r in real)
    gateway = next(r for r in real if r.kind == "Gateway")
    assert gateway.file.endswith("istio/gateways/eafix-trading.yml") and gateway.document == 0
    assert "gateway.networking.istio.io/eafix-gateway" in kubectl_on(sim, "get", "gateways.networking.istio.io",
                                                                     "-n", NS, "-o", "name").stdout
