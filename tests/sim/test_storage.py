"""Storage binds as a provisioner would bind it: through the StorageClass, on the sim's own driver.

A GKE-shaped sim (the shared module fixture) and an EKS-shaped one, driven by the real
kubectl (one ``get -o json`` per check of claims, volumes, pods and events): the default
class filled in, WaitForFirstConsumer binding
when the pod is scheduled (``volume.kubernetes.io/selected-node``, a zonal PV from the CSI
driver), Immediate binding with the class's reclaim policy, a missing class and another
cloud's driver leaving the claim (and its pod) Pending with the real events and messages.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from eafix_capacity.errors import InputError
from eafix_capacity.manifests.render import RenderOptions
from eafix_capacity.manifests.workflow import build_profile
from eafix_capacity.sim import cli as sim_cli
from eafix_capacity.sim import resources as R
from eafix_capacity.sim import storage as S
from eafix_capacity.sim.clock import SimClock
from eafix_capacity.sim.cluster import SimCluster, node_objects
from eafix_capacity.sim.controllers.manager import ControllerManager
from eafix_capacity.sim.store import Store
from eafix_capacity.sim.testing import run_kubectl

pytestmark = [pytest.mark.sim, pytest.mark.kubectl]

GKE_DRIVER = "pd.csi.storage.gke.io"
EBS_DRIVER = "ebs.csi.aws.com"
PREBIND_TIMEOUT = 'running PreBind plugin "VolumeBinding": binding volumes: context deadline exceeded'
UNBOUND_3 = ("0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/3 nodes are "
             "available: 3 Preemption is not helpful for scheduling.")


@pytest.fixture(scope="module")
def eks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    with SimCluster(node_type="m5.2xlarge", kubeconfig=tmp_path_factory.mktemp("eks") / "kubeconfig") as sim:
        yield sim


def kubectl(sim: SimCluster, *args: str, stdin: str | None = None) -> str:
    out = run_kubectl(sim, *args, cache_dir=Path(str(sim.kubeconfig)).parent / "kube-cache", stdin=stdin).stdout
    sim.settle()
    return out


class State:
    """Claims, volumes, pods and events of a namespace, from one ``kubectl get -o json``."""

    def __init__(self, sim: SimCluster, ns: str = "default") -> None:
        items = json.loads(kubectl(sim, "get", "pvc,pv,pods,events", "-n", ns, "-o", "json"))["items"]
        self.objs = {(o["kind"], o["metadata"]["name"]): o for o in items if o["kind"] != "Event"}
        self.events = [(o["involvedObject"]["name"], o["type"], o["reason"], o["message"])
                       for o in items if o["kind"] == "Event"]

    def pvc(self, name: str) -> dict:
        return self.objs[("PersistentVolumeClaim", name)]

    def pv(self, name: str) -> dict:
        return self.objs[("PersistentVolume", name)]

    def pod(self, name: str) -> dict:
        return self.objs[("Pod", name)]

    def of(self, name: str) -> list[tuple[str, str, str]]:
        return [(t, r, m) for n, t, r, m in self.events if n == name]


def create(sim: SimCluster, obj: dict) -> dict:
    """``kubectl create -o json``: the object as the API server stored it (after admission)."""
    return json.loads(kubectl(sim, "create", "-f", "-", "-o", "json", stdin=json.dumps(obj)))


def claim(name: str, cls: str | None = None, size: str = "5Gi") -> dict:
    spec: dict = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if cls is not None:
        spec["storageClassName"] = cls
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}


def pod(name: str, claim_name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "busybox:1.36",
                                     "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}]}}


def storage_class(name: str, provisioner: str, mode: str, reclaim: str = "Delete") -> dict:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
            "provisioner": provisioner, "reclaimPolicy": reclaim, "volumeBindingMode": mode}


def apply(sim: SimCluster, *objs: dict) -> None:
    kubectl(sim, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)}))


# --- through the API -----------------------------------------------------------------------------


def test_wait_for_first_consumer_binds_when_the_pod_is_scheduled(sim_cluster_module):
    sim = sim_cluster_module
    assert sim.provisioners == (GKE_DRIVER,)
    created = create(sim, claim("wffc-data"))
    assert created["spec"]["storageClassName"] == "standard-rwo"  # DefaultStorageClass admission
    assert "kubernetes.io/pvc-protection" in created["metadata"]["finalizers"]
    st = State(sim)
    assert st.pvc("wffc-data")["status"]["phase"] == "Pending" and "volumeName" not in st.pvc("wffc-data")["spec"]
    assert ("Normal", "WaitForFirstConsumer", "waiting for first consumer to be created before binding") \
        in st.of("wffc-data")

    apply(sim, pod("wffc-app", "wffc-data"))
    st = State(sim)
    node = st.pod("wffc-app")["spec"]["nodeName"]
    assert st.pod("wffc-app")["status"]["phase"] == "Running"
    pvc = st.pvc("wffc-data")
    ann = pvc["metadata"]["annotations"]
    assert ann[S.ANN_SELECTED_NODE] == node and ann[S.ANN_STORAGE_PROVISIONER] == GKE_DRIVER
    assert pvc["status"] == {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "5Gi"}}
    pv = st.pv(pvc["spec"]["volumeName"])
    assert pv["metadata"]["name"] == f"pvc-{pvc['metadata']['uid']}"
    assert pv["metadata"]["annotations"][S.ANN_PROVISIONED_BY] == GKE_DRIVER and pv["spec"]["csi"]["driver"] == GKE_DRIVER
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete" and pv["spec"]["capacity"] == {"storage": "5Gi"}
    assert (pv["spec"]["claimRef"]["name"], pv["status"]["phase"]) == ("wffc-data", "Bound")
    zone = sim.store.get(R.NODE, None, node)["metadata"]["labels"]["topology.kubernetes.io/zone"]
    assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": [zone]}]}]
    assert ("Normal", "ExternalProvisioning", S.external_provisioning_message(GKE_DRIVER)) in st.of("wffc-data")
    assert ("Normal", "ProvisioningSucceeded", f"Successfully provisioned volume {pv['metadata']['name']}") \
        in st.of("wffc-data")
    # a second pod of the claim goes where the volume is (the zone's only node), not to an emptier one
    apply(sim, pod("wffc-app-2", "wffc-data"))
    assert State(sim).pod("wffc-app-2")["spec"]["nodeName"] == node
    table = kubectl(sim, "get", "sc")
    assert "standard-rwo (default)" in table and "WaitForFirstConsumer" in table


def test_two_pods_scheduled_in_one_pass_on_one_new_claim_end_in_its_volumes_zone():
    # in-process, so that both pods wait in the same scheduling pass (kubectl's creates may not)
    store = Store(seed=1)
    for n in node_objects("n2-standard-8", nodes=3, zones=("a", "b", "c")):
        store.create(R.NODE, n)
    for sc in S.cloud_classes("gcp"):
        store.create(R.STORAGECLASS, sc)
    cm = ControllerManager(store, store.registry, clock=SimClock(speed=0), seed=1)
    store.create(R.PVC, {**claim("shared-data", "standard-rwo"), "metadata": {"name": "shared-data",
                                                                           "namespace": "default"}})
    for name in ("shared-a", "shared-b"):
        store.create(R.POD, {**pod(name, "shared-data"), "metadata": {"name": name, "namespace": "default"}})
    cm.run_once()
    pvc = store.get(R.PVC, "default", "shared-data")
    pv = store.get(R.PV, None, pvc["spec"]["volumeName"])
    zones = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"]
    for name in ("shared-a", "shared-b"):
        node = store.get(R.NODE, None, store.get(R.POD, "default", name)["spec"]["nodeName"])
        assert node["metadata"]["labels"][S.ZONE_LABEL] in zones


def test_an_existing_volume_binds_to_a_claim_that_fits_it(sim_cluster_module):
    sim = sim_cluster_module
    pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "manual-pv"},
          "spec": {"capacity": {"storage": "8Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                   "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": "/data"}}}
    apply(sim, pv)
    assert State(sim).pv("manual-pv")["status"]["phase"] == "Available"
    apply(sim, claim("too-big", "", "9Gi"), claim("fits", "", "2Gi"))
    st = State(sim)
    assert st.pvc("too-big")["status"]["phase"] == "Pending"
    fits = st.pvc("fits")
    assert (fits["status"]["phase"], fits["spec"]["volumeName"], fits["status"]["capacity"]) == \
        ("Bound", "manual-pv", {"storage": "8Gi"})
    bound = st.pv("manual-pv")
    assert bound["status"]["phase"] == "Bound" and bound["spec"]["claimRef"]["uid"] == fits["metadata"]["uid"]
    assert bound["metadata"]["annotations"][S.ANN_BOUND_BY_CONTROLLER] == "yes"


def test_immediate_class_binds_at_once_and_its_reclaim_policy_applies(sim_cluster_module):
    sim = sim_cluster_module
    apply(sim, storage_class("keep", GKE_DRIVER, "Immediate", reclaim="Retain"), claim("keep-data", "keep", "3Gi"))
    st = State(sim)
    pvc = st.pvc("keep-data")
    assert pvc["status"]["phase"] == "Bound" and S.ANN_SELECTED_NODE not in pvc["metadata"]["annotations"]
    pv_name = pvc["spec"]["volumeName"]
    assert st.pv(pv_name)["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert st.pv(pv_name)["spec"]["storageClassName"] == "keep"
    kubectl(sim, "delete", "pvc", "keep-data")
    assert State(sim).pv(pv_name)["status"]["phase"] == "Released"  # Retain keeps the volume


def test_missing_class_leaves_the_claim_and_its_statefulset_pod_pending(sim_cluster_module):
    sim = sim_cluster_module
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "ghost"},
           "spec": {"serviceName": "ghost", "replicas": 1, "selector": {"matchLabels": {"app": "ghost"}},
                    "template": {"metadata": {"labels": {"app": "ghost"}},
                                 "spec": {"containers": [{"name": "db", "image": "postgres:16.1"}]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                        "accessModes": ["ReadWriteOnce"], "storageClassName": "no-such-class",
                        "resources": {"requests": {"storage": "1Gi"}}}}]}}
    apply(sim, sts)
    st = State(sim)
    assert st.pvc("data-ghost-0")["status"]["phase"] == "Pending"
    assert ("Warning", "ProvisioningFailed", 'storageclass.storage.k8s.io "no-such-class" not found') \
        in st.of("data-ghost-0")
    waiting = st.pod("ghost-0")
    assert "nodeName" not in waiting["spec"] and waiting["status"]["phase"] == "Pending"
    cond = next(c for c in waiting["status"]["conditions"] if c["type"] == "PodScheduled")
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "Unschedulable", UNBOUND_3)
    assert ("Warning", "FailedScheduling", UNBOUND_3) in st.of("ghost-0")
    # the class appears: the claim binds and the pod runs, as the next resync would do
    apply(sim, storage_class("no-such-class", GKE_DRIVER, "Immediate"))
    st = State(sim)
    assert st.pvc("data-ghost-0")["status"]["phase"] == "Bound" and st.pod("ghost-0")["status"]["phase"] == "Running"


def test_a_class_of_another_clouds_driver_stays_pending(eks):
    assert eks.provisioners == (EBS_DRIVER,)
    apply(eks, storage_class("gke-late", GKE_DRIVER, "WaitForFirstConsumer"),
          storage_class("gke-now", GKE_DRIVER, "Immediate"), storage_class("ebs", EBS_DRIVER, "Immediate"),
          claim("late-data", "gke-late"), claim("now-data", "gke-now"), claim("ebs-data", "ebs"),
          pod("late-app", "late-data"))
    waiting = S.external_provisioning_message(GKE_DRIVER)
    st = State(eks)
    now = st.pvc("now-data")
    assert now["status"]["phase"] == "Pending" and now["metadata"]["annotations"][S.ANN_STORAGE_PROVISIONER] == GKE_DRIVER
    assert ("Normal", "ExternalProvisioning", waiting) in st.of("now-data")
    late = st.pvc("late-data")
    assert late["status"]["phase"] == "Pending" and S.ANN_SELECTED_NODE in late["metadata"]["annotations"]
    assert ("Normal", "ExternalProvisioning", waiting) in st.of("late-data")
    app = st.pod("late-app")
    assert "nodeName" not in app["spec"] and app["status"]["phase"] == "Pending"  # waiting in PreBind
    pvs = [o for (kind, _), o in st.objs.items() if kind == "PersistentVolume"]
    assert [pv["spec"]["csi"]["driver"] for pv in pvs] == [EBS_DRIVER]
    assert pvs[0]["spec"]["claimRef"]["name"] == "ebs-data" and st.pvc("ebs-data")["status"]["phase"] == "Bound"
    # after VolumeBinding's bind timeout (600 s of sim time) the scheduler reports the failed wait
    eks.clock.advance(600)
    eks.settle()
    app = State(eks).pod("late-app")
    cond = next(c for c in app["status"]["conditions"] if c["type"] == "PodScheduled")
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "SchedulerError", PREBIND_TIMEOUT)
    assert ("Warning", "FailedScheduling", PREBIND_TIMEOUT) in State(eks).of("late-app")
    assert "nodeName" not in app["spec"]


def test_without_a_default_class_an_unclassed_claim_stays_pending(eks):
    classes = kubectl(eks, "get", "sc")
    assert "gp2 (default)" not in classes and "gp2" in classes
    assert "storageClassName" not in create(eks, claim("plain-data"))["spec"]
    st = State(eks)
    assert st.pvc("plain-data")["status"]["phase"] == "Pending"
    assert ("Normal", "FailedBinding", "no persistent volumes available for this claim and no storage class is set") \
        in st.of("plain-data")
    # a default class made later is assigned retroactively (the PV controller's assignDefaultStorageClass)
    kubectl(eks, "annotate", "sc", "gp2", "storageclass.kubernetes.io/is-default-class=true")
    st = State(eks)
    assert st.pvc("plain-data")["spec"]["storageClassName"] == "gp2"
    assert ("Normal", "WaitForFirstConsumer", "waiting for first consumer to be created before binding") \
        in st.of("plain-data")


def test_the_eks_rendering_binds_on_an_eks_shaped_sim(eks):
    rendered = build_profile("recommended", options=RenderOptions(provider="eks")).objects
    storage_objs = [o for o in rendered if o["kind"] in ("Namespace", "StorageClass", "PersistentVolumeClaim")]
    ns = next(o["metadata"]["name"] for o in storage_objs if o["kind"] == "Namespace")
    claim_name = next(o["metadata"]["name"] for o in storage_objs if o["kind"] == "PersistentVolumeClaim")
    consumer = pod("eks-consumer", claim_name)
    consumer["metadata"]["namespace"] = ns
    apply(eks, *storage_objs, consumer)
    st = State(eks, ns)
    bound = st.pvc(claim_name)
    assert bound["status"]["phase"] == "Bound" and bound["spec"]["storageClassName"] == "eafix-ssd"
    pv = st.pv(bound["spec"]["volumeName"])
    assert pv["spec"]["csi"]["driver"] == EBS_DRIVER and pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert st.pod("eks-consumer")["status"]["phase"] == "Running"


def test_sim_up_refuses_a_provisioner_no_storage_class_could_name(capsys):
    assert sim_cli.main(["sim", "up", "--provisioner", "not a name"]) == 2
    assert "invalid provisioner 'not a name'" in capsys.readouterr().err


# --- pure rules ------------------------------------------------------------------------------------


def _sc(name: str, created: str, default: str | None = None) -> dict:
    meta: dict = {"name": name, "creationTimestamp": created}
    if default is not None:
        meta["annotations"] = {S.ANN_DEFAULT_CLASS: default}
    return {"metadata": meta, "provisioner": GKE_DRIVER}


def test_default_class_is_the_newest_annotated_true_one():
    classes = [_sc("old", "2026-01-01T00:00:00Z", "true"), _sc("new", "2026-02-01T00:00:00Z", "true"),
               _sc("newest", "2026-03-01T00:00:00Z", "false"), _sc("plain", "2026-04-01T00:00:00Z")]
    assert S.default_class(classes)["metadata"]["name"] == "new"
    assert S.default_class(classes[2:]) is None
    assert S.default_class_for({"spec": {"storageClassName": ""}}, classes) is None  # "" asks for no class
    assert S.default_class_for({"spec": {}}, classes) == "new"


def test_the_beta_annotation_names_the_class_before_the_field():
    c = {"metadata": {"annotations": {S.ANN_CLAIM_CLASS_BETA: "beta"}}, "spec": {"storageClassName": "ga"}}
    assert S.claim_class_name(c) == "beta"
    assert S.provisioner_of({"provisioner": "kubernetes.io/aws-ebs"}) == EBS_DRIVER  # CSI migration


def test_volume_node_affinity_is_anded_with_the_pods_own():
    p = {"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["a"]}]},
                              {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["b"]}]}]}}}}}
    zone = ({"matchExpressions": [{"key": S.ZONE_LABEL, "operator": "In", "values": ["z1"]}]},)
    terms = S.with_node_terms(p, [zone])["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert [[e["values"][0] for e in t["matchExpressions"]] for t in terms] == [["a", "z1"], ["b", "z1"]]
    assert "affinity" not in p["spec"]["affinity"]["nodeAffinity"]  # the pod itself is unchanged
    assert len(p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"][0]["matchExpressions"]) == 1


def test_provisioner_names_are_checked_as_a_storage_class_checks_them():
    assert S.check_provisioners(["example.com/local", EBS_DRIVER, EBS_DRIVER]) == ("example.com/local", EBS_DRIVER)
    for bad in ("", "a/b/c", "-leading", "x" * 64, "bad_prefix!/name"):
        with pytest.raises(InputError, match="invalid provisioner"):
            S.check_provisioners([bad])
