"""Which StorageClass a claim resolves to, and what binding it waits for: the sim's storage rules.

A claim on a real cluster binds only through its StorageClass: the DefaultStorageClass
admission plugin fills in the default class (``storageclass.kubernetes.io/is-default-class:
"true"``) for a claim that names none, the PV controller
(pkg/controller/volume/persistentvolume) hands a claim of an existing class to the
provisioner the class names, and that provisioner (a CSI driver's external-provisioner)
creates the volume only if it runs in the cluster; ``WaitForFirstConsumer`` delays all of it
until the scheduler's VolumeBinding plugin has picked a node for a pod using the claim. So
a GKE class on an EKS cluster leaves the claim Pending, and so does a missing class.

Everything here is pure: the names (annotations, each cloud's CSI driver, the classes a
cloud creates) and the decisions, as functions of API objects. The PV controller
(:mod:`eafix_capacity.sim.controllers.persistentvolume`) and the scheduler's binding step
act on them.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from eafix_capacity import quantity
from eafix_capacity import scheduling as R
from eafix_capacity.errors import InputError, QuantityError
from eafix_capacity.sim.scheduler import node_affinity_matches

# --- names --------------------------------------------------------------------------------

CSI_DRIVER_OF_CLOUD: Mapping[str, str] = {"gcp": "pd.csi.storage.gke.io", "aws": "ebs.csi.aws.com",
                                          "azure": "disk.csi.azure.com"}
"""The block-storage CSI driver each cloud's managed Kubernetes runs (GKE, EKS add-on, AKS)."""
CSI_DRIVER_OF_PROVIDER: Mapping[str, str] = {"gke": CSI_DRIVER_OF_CLOUD["gcp"], "eks": CSI_DRIVER_OF_CLOUD["aws"],
                                             "aks": CSI_DRIVER_OF_CLOUD["azure"]}
# CSI migration (k8s.io/csi-translation-lib): an in-tree provisioner name is served by its CSI driver.
IN_TREE_TO_CSI: Mapping[str, str] = {"kubernetes.io/gce-pd": "pd.csi.storage.gke.io",
                                     "kubernetes.io/aws-ebs": "ebs.csi.aws.com",
                                     "kubernetes.io/azure-disk": "disk.csi.azure.com",
                                     "kubernetes.io/azure-file": "file.csi.azure.com"}

ANN_DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
ANN_DEFAULT_CLASS_BETA = "storageclass.beta.kubernetes.io/is-default-class"
ANN_CLAIM_CLASS_BETA = "volume.beta.kubernetes.io/storage-class"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_STORAGE_PROVISIONER_BETA = "volume.beta.kubernetes.io/storage-provisioner"
ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"
ZONE_LABEL = "topology.kubernetes.io/zone"

# The PV controller's and the external-provisioner's event texts (pv_controller.go,
# sig-storage-lib-external-provisioner controller.go).
MSG_WAIT_FOR_FIRST_CONSUMER = "waiting for first consumer to be created before binding"
MSG_NO_CLASS = "no persistent volumes available for this claim and no storage class is set"
# The VolumeBinding plugin's PreFilter and Filter reasons (pkg/scheduler/framework/plugins/volumebinding).
MSG_UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
R_BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"
R_NODE_CONFLICT = "node(s) had volume node affinity conflict"
PV_CONTROLLER = "persistentvolume-controller"


_QUALIFIED_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
PROVISIONER_RULE = ("a provisioner name as a StorageClass names it: a qualified name such as ebs.csi.aws.com or "
                    "example.com/local (ValidateStorageClass validateProvisioner)")


def check_provisioners(names: Iterable[str]) -> tuple[str, ...]:
    """The provisioners the sim is started with, checked as ValidateStorageClass checks a
    class's ``provisioner`` (a qualified name, case ignored); ``InputError`` for a bad one."""
    out: list[str] = []
    for name in names:
        text = str(name).lower()
        prefix, _, last = text.rpartition("/")
        ok = (0 < len(last) <= 63 and _QUALIFIED_NAME_PART.fullmatch(last) is not None
              and (not prefix or (len(prefix) <= 253 and _DNS_SUBDOMAIN.fullmatch(prefix) is not None))
              and text.count("/") <= 1)
        if not ok:
            raise InputError("invalid provisioner", field="provisioners", value=name, valid=PROVISIONER_RULE)
        if name not in out:
            out.append(str(name))
    if not out:
        raise InputError("no provisioner given", field="provisioners", value=list(names), valid=PROVISIONER_RULE)
    return tuple(out)


def external_provisioning_message(provisioner: str) -> str:
    """pv_controller.go provisionClaimOperationExternal's ``ExternalProvisioning`` event."""
    return (f"Waiting for a volume to be created either by the external provisioner '{provisioner}' or manually by "
            "the system administrator. If volume creation is delayed, please verify that the provisioner is running "
            "and correctly registered.")


def class_not_found(name: str) -> str:
    """The lister's NotFound error, which the PV controller puts in its ``ProvisioningFailed`` event."""
    return f'storageclass.storage.k8s.io "{name}" not found'


def provisioner_component(provisioner: str) -> str:
    """The external-provisioner's event source: ``<driver>_<pod>_<id>`` as it names itself."""
    return f"{provisioner}_csi-controller-sim_{hashlib.sha1(provisioner.encode()).hexdigest()[:8]}"


# --- classes ------------------------------------------------------------------------------

def is_default_class(sc: Mapping) -> bool:
    """pkg/volume/util IsDefaultAnnotation: the GA or beta annotation set to ``"true"``."""
    ann = (sc.get("metadata") or {}).get("annotations") or {}
    return ann.get(ANN_DEFAULT_CLASS) == "true" or ann.get(ANN_DEFAULT_CLASS_BETA) == "true"


def default_class(classes: Iterable[Mapping]) -> Mapping | None:
    """pkg/volume/util GetDefaultClass: of the default classes the newest, then by name."""
    defaults = [sc for sc in classes if is_default_class(sc)]
    if not defaults:
        return None
    defaults.sort(key=lambda sc: sc["metadata"]["name"])
    defaults.sort(key=lambda sc: sc["metadata"].get("creationTimestamp") or "", reverse=True)
    return defaults[0]


def claim_class_name(claim: Mapping) -> str:
    """storagehelpers GetPersistentVolumeClaimClass: the beta annotation first, then the field."""
    ann = (claim.get("metadata") or {}).get("annotations") or {}
    if ANN_CLAIM_CLASS_BETA in ann:
        return str(ann[ANN_CLAIM_CLASS_BETA])
    return str((claim.get("spec") or {}).get("storageClassName") or "")


def claim_names_class(claim: Mapping) -> bool:
    """PersistentVolumeClaimHasClass: a class is stated, even ``""`` (which asks for no class)."""
    ann = (claim.get("metadata") or {}).get("annotations") or {}
    return ANN_CLAIM_CLASS_BETA in ann or (claim.get("spec") or {}).get("storageClassName") is not None


def default_class_for(claim: Mapping, classes: Iterable[Mapping]) -> str | None:
    """The class name the DefaultStorageClass admission plugin (and, for an existing claim, the
    PV controller's retroactive assignment) writes into ``spec.storageClassName``, or None."""
    if claim_names_class(claim):
        return None
    sc = default_class(classes)
    return None if sc is None else str(sc["metadata"]["name"])


def provisioner_of(sc: Mapping) -> str:
    """The provisioner that serves the class: its CSI driver for an in-tree name (CSI migration)."""
    name = str(sc.get("provisioner") or "")
    return IN_TREE_TO_CSI.get(name, name)


def delays_binding(sc: Mapping | None) -> bool:
    """storagehelpers IsDelayBindingMode: a missing class binds immediately (and fails there)."""
    return sc is not None and sc.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER


def cloud_classes(cloud: str) -> list[dict]:
    """The StorageClasses a new managed cluster of ``cloud`` holds (as of Kubernetes 1.32):
    GKE's default ``standard-rwo`` (pd-balanced), AKS's default ``default``
    (StandardSSD_LRS), and EKS's ``gp2``, which since EKS 1.30 is no longer the default."""
    def sc(name: str, provisioner: str, parameters: dict, *, default: bool, mode: str, expand: bool) -> dict:
        meta: dict = {"name": name, "labels": {"addonmanager.kubernetes.io/mode": "EnsureExists"}}
        if default:
            meta["annotations"] = {ANN_DEFAULT_CLASS: "true"}
        out: dict = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": meta,
               "provisioner": provisioner, "parameters": parameters, "reclaimPolicy": "Delete",
               "volumeBindingMode": mode}
        if expand:
            out["allowVolumeExpansion"] = True
        return out
    if cloud == "gcp":
        return [sc("standard-rwo", "pd.csi.storage.gke.io", {"type": "pd-balanced"}, default=True,
                   mode=WAIT_FOR_FIRST_CONSUMER, expand=True)]
    if cloud == "azure":
        return [sc("default", "disk.csi.azure.com", {"skuname": "StandardSSD_LRS"}, default=True,
                   mode=WAIT_FOR_FIRST_CONSUMER, expand=True)]
    if cloud == "aws":
        return [sc("gp2", "kubernetes.io/aws-ebs", {"fsType": "ext4", "type": "gp2"}, default=False,
                   mode=WAIT_FOR_FIRST_CONSUMER, expand=False)]
    return []


def admit(kind: str, obj: dict, classes: Iterable[Mapping]) -> None:
    """The storage admission plugins on create, in place: DefaultStorageClass
    (plugin/pkg/admission/storage/storageclass/setdefault) names the default class in a claim
    that names none; StorageObjectInUseProtection adds the protection finalizer."""
    meta = obj.setdefault("metadata", {})
    if kind == "PersistentVolumeClaim":
        name = default_class_for(obj, classes)
        if name is not None:
            obj.setdefault("spec", {})["storageClassName"] = name
        finalizer = "kubernetes.io/pvc-protection"
    elif kind == "PersistentVolume":
        finalizer = "kubernetes.io/pv-protection"
    else:
        return
    finalizers = meta.setdefault("finalizers", [])
    if finalizer not in finalizers:
        finalizers.append(finalizer)


# --- the PV controller's decision for one claim -------------------------------------------

@dataclass(frozen=True)
class Event:
    etype: str
    reason: str
    message: str
    component: str = PV_CONTROLLER


@dataclass(frozen=True)
class ClaimStep:
    """What the PV controller (and the external-provisioner) do with a claim this pass.

    ``action``: ``"bound"`` (nothing to do), ``"pending"`` (status Pending, ``events``),
    ``"set-class"`` (write ``storage_class`` into the claim), ``"bind"`` (bind to the
    existing ``volume``), ``"provision"`` (create a volume by ``provisioner`` for ``node``'s
    topology, then bind), ``"lost"`` (the bound volume is gone)."""

    action: str
    events: tuple[Event, ...] = ()
    volume: str = ""
    storage_class: str = ""
    provisioner: str = ""
    node: str = ""
    set_provisioner: bool = False


def _size(text: object) -> int:
    try:
        return quantity.parse(text).int_value()  # type: ignore[arg-type]
    except (QuantityError, TypeError):
        return 0


def claim_request(claim: Mapping) -> str:
    return str((((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage", "1Gi"))


def _satisfies(pv: Mapping, claim: Mapping) -> str:
    """pv_controller.go checkVolumeSatisfyClaim: "" when ``pv`` can hold ``claim``, else why not."""
    pspec, cspec = pv.get("spec") or {}, claim.get("spec") or {}
    if (pv.get("metadata") or {}).get("deletionTimestamp"):
        return f'the volume is marked for deletion "{pv["metadata"]["name"]}"'
    if _size((pspec.get("capacity") or {}).get("storage")) < _size(claim_request(claim)):
        return "requested PV is too small"
    if str(pspec.get("storageClassName") or "") != claim_class_name(claim):
        return "storageClassName does not match"
    if (pspec.get("volumeMode") or "Filesystem") != (cspec.get("volumeMode") or "Filesystem"):
        return "incompatible volumeMode"
    if not set(cspec.get("accessModes") or []) <= set(pspec.get("accessModes") or []):
        return "incompatible accessMode"
    return ""


def _claimed_by(pv: Mapping, claim: Mapping) -> bool:
    ref = (pv.get("spec") or {}).get("claimRef") or {}
    meta = claim["metadata"]
    return (ref.get("name") == meta["name"] and ref.get("namespace") == meta.get("namespace")
            and (not ref.get("uid") or ref.get("uid") == meta.get("uid")))


def _best_match(claim: Mapping, volumes: Iterable[Mapping], *, delay: bool) -> Mapping | None:
    """index.go findBestMatchForClaim, simplified: a volume pre-bound to the claim, else (not in
    delayed binding, where the scheduler matches) the smallest free one that satisfies it."""
    free = []
    for pv in volumes:
        if _satisfies(pv, claim):
            continue
        if (pv.get("spec") or {}).get("claimRef"):
            if _claimed_by(pv, claim):
                return pv
            continue
        if not delay and (pv.get("status") or {}).get("phase", "Available") == "Available":
            free.append(pv)
    free.sort(key=lambda pv: (_size(((pv.get("spec") or {}).get("capacity") or {}).get("storage")),
                              pv["metadata"]["name"]))
    return free[0] if free else None


def sync_claim(claim: Mapping, *, classes: Mapping[str, Mapping], volumes: Mapping[str, Mapping],
               provisioners: frozenset[str], waiting_pods: Sequence[str] = ()) -> ClaimStep:
    """pv_controller.go syncClaim for one claim, with the external-provisioner's part.

    ``classes`` and ``volumes`` by name; ``provisioners``: the provisioners running in the
    cluster; ``waiting_pods``: the names of unscheduled pods that use the claim."""
    meta = claim.get("metadata") or {}
    ann = meta.get("annotations") or {}
    spec = claim.get("spec") or {}
    if ANN_BIND_COMPLETED in ann:
        name = spec.get("volumeName") or ""
        if not name:
            return ClaimStep("lost", (Event("Warning", "ClaimLost", "Bound claim has lost reference to "
                                                                   "PersistentVolume. Data on the volume is lost!"),))
        if name not in volumes:
            return ClaimStep("lost", (Event("Warning", "ClaimLost",
                                            "Bound claim has lost its PersistentVolume. Data on the volume is lost!"),))
        return ClaimStep("bind", volume=name) if (claim.get("status") or {}).get("phase") != "Bound" \
            else ClaimStep("bound")
    if spec.get("volumeName"):  # the user asked for one volume
        pv = volumes.get(spec["volumeName"])
        if pv is None:
            return ClaimStep("pending")
        ref = (pv.get("spec") or {}).get("claimRef")
        if not ref:
            why = _satisfies(pv, claim)
            if why:
                return ClaimStep("pending", (Event("Warning", "VolumeMismatch",
                                                   f'Cannot bind to requested volume "{spec["volumeName"]}": {why}'),))
            return ClaimStep("bind", volume=spec["volumeName"])
        if _claimed_by(pv, claim):
            return ClaimStep("bind", volume=spec["volumeName"])
        return ClaimStep("pending", (Event("Warning", "FailedBinding",
                                           f'volume "{spec["volumeName"]}" already bound to a different claim.'),))
    class_name = claim_class_name(claim)
    sc = classes.get(class_name) if class_name else None
    delay = delays_binding(sc)
    match = _best_match(claim, volumes.values(), delay=delay)
    if match is not None:
        return ClaimStep("bind", volume=match["metadata"]["name"])
    retro = default_class_for(claim, classes.values())
    if retro is not None:
        return ClaimStep("set-class", storage_class=retro)
    node = str(ann.get(ANN_SELECTED_NODE) or "")
    if delay and not node:
        if waiting_pods:
            names = sorted(waiting_pods)
            message = (f"waiting for pods {','.join(names)} to be scheduled" if len(names) > 1
                       else f"waiting for pod {names[0]} to be scheduled")
            return ClaimStep("pending", (Event("Normal", "WaitForPodScheduled", message),))
        return ClaimStep("pending", (Event("Normal", "WaitForFirstConsumer", MSG_WAIT_FOR_FIRST_CONSUMER),))
    if not class_name:
        return ClaimStep("pending", (Event("Normal", "FailedBinding", MSG_NO_CLASS),))
    if sc is None:
        return ClaimStep("pending", (Event("Warning", "ProvisioningFailed", class_not_found(class_name)),))
    provisioner = provisioner_of(sc)
    set_ann = ann.get(ANN_STORAGE_PROVISIONER) != provisioner or ann.get(ANN_STORAGE_PROVISIONER_BETA) != provisioner
    waiting = Event("Normal", "ExternalProvisioning", external_provisioning_message(provisioner))
    if provisioner not in provisioners:
        return ClaimStep("pending", (waiting,), provisioner=provisioner, set_provisioner=set_ann)
    return ClaimStep("provision", (waiting,), storage_class=class_name, provisioner=provisioner, node=node,
                     set_provisioner=set_ann)


def provisioned_volume(claim: Mapping, sc: Mapping, *, provisioner: str, zone: str | None) -> dict:
    """The PersistentVolume a CSI external-provisioner creates for ``claim``: named
    ``pvc-<claim uid>``, ``provisioned-by`` the driver, reclaim policy and mount options from
    the class, capacity the request, node affinity to the zone (CSI topology; the sim's nodes
    carry the well-known zone label, where a real driver names its own topology key), and
    the ``claimRef`` the PV controller then binds."""
    meta = claim["metadata"]
    spec = claim.get("spec") or {}
    name = f"pvc-{meta.get('uid')}"
    pv_spec: dict = {
        "capacity": {"storage": claim_request(claim)},
        "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
        "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy") or "Delete",
        "storageClassName": sc["metadata"]["name"],
        "volumeMode": spec.get("volumeMode") or "Filesystem",
        "claimRef": {"kind": "PersistentVolumeClaim", "namespace": meta.get("namespace"), "name": meta["name"],
                     "uid": meta.get("uid"), "apiVersion": "v1", "resourceVersion": meta.get("resourceVersion")},
        "csi": {"driver": provisioner, "volumeHandle": f"sim/{provisioner}/{name}",
                "fsType": str((sc.get("parameters") or {}).get("csi.storage.k8s.io/fstype") or "ext4"),
                "volumeAttributes": {"storage.kubernetes.io/csiProvisionerIdentity": f"sim-{provisioner}"}},
    }
    if sc.get("mountOptions"):
        pv_spec["mountOptions"] = list(sc["mountOptions"])
    if zone:
        pv_spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": ZONE_LABEL, "operator": "In", "values": [zone]}]}]}}
    return {"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": {ANN_PROVISIONED_BY: provisioner},
                         "finalizers": ["kubernetes.io/pv-protection"]},
            "spec": pv_spec}


def provisioning_zone(claim: Mapping, sc: Mapping, nodes: Sequence[Mapping], node: str) -> str | None:
    """The zone the volume is created in: the selected node's (WaitForFirstConsumer), else one
    of the allowed zones the cluster's nodes are in, picked by the claim's name as the
    external-provisioner's topology code does (stable per claim, spread over claims)."""
    by_name = {n["metadata"]["name"]: n for n in nodes}
    if node:
        chosen = by_name.get(node)
        return None if chosen is None else ((chosen["metadata"].get("labels") or {}).get(ZONE_LABEL))
    zones = sorted({z for n in nodes if (z := (n["metadata"].get("labels") or {}).get(ZONE_LABEL))
                    and topology_allows(sc, n["metadata"].get("labels") or {})})
    if not zones:
        return None
    digest = int(hashlib.sha1(f"{claim['metadata'].get('namespace')}/{claim['metadata']['name']}".encode())
                 .hexdigest(), 16)
    return zones[digest % len(zones)]


def topology_allows(sc: Mapping | None, labels: Mapping[str, str]) -> bool:
    """v1helper MatchTopologySelectorTerms over the class's ``allowedTopologies`` (ORed terms)."""
    terms = (sc or {}).get("allowedTopologies") or []
    if not terms:
        return True
    return any(all(labels.get(e.get("key")) in (e.get("values") or []) for e in t.get("matchLabelExpressions") or [])
               for t in terms)


# --- the scheduler's VolumeBinding plugin for one pod --------------------------------------

@dataclass(frozen=True)
class PodVolumes:
    """The VolumeBinding plugin's view of a pod's claims.

    ``prefilter``: the PreFilter's UnschedulableAndUnresolvable message, if any; ``node_terms``:
    required node selector terms (each an ORed list) every node must also match: the bound
    volumes' node affinity and the classes' allowed topologies; ``provision``: the unbound
    WaitForFirstConsumer claims (namespace, name) to annotate with the chosen node;
    ``in_flight``: those claims already carry a selected node, so the pod waits in PreBind
    for the provisioner; ``filter_reason``: a Filter reason every node fails with."""

    prefilter: str = ""
    node_terms: tuple[tuple[dict, ...], ...] = ()
    provision: tuple[tuple[str, str], ...] = ()
    in_flight: bool = False
    filter_reason: str = ""


def pod_claim_names(pod: Mapping) -> list[str]:
    return [v["persistentVolumeClaim"].get("claimName", "") for v in (pod.get("spec") or {}).get("volumes") or []
            if isinstance(v, Mapping) and v.get("persistentVolumeClaim")]


def pod_volumes(pod: Mapping, *, claims: Mapping[tuple[str, str], Mapping], classes: Mapping[str, Mapping],
                volumes: Mapping[str, Mapping]) -> PodVolumes:
    """volume_binding.go PreFilter (podHasPVCs, GetPodVolumeClaims) and the node part of Filter."""
    names = pod_claim_names(pod)
    if not names:
        return PodVolumes()
    ns = (pod.get("metadata") or {}).get("namespace") or "default"
    found: list[Mapping] = []
    for name in names:
        claim = claims.get((ns, name))
        if claim is None:
            return PodVolumes(prefilter=f'persistentvolumeclaim "{name}" not found')
        if (claim.get("status") or {}).get("phase") == "Lost":
            return PodVolumes(prefilter=f'persistentvolumeclaim "{name}" bound to non-existent persistentvolume '
                                        f'"{(claim.get("spec") or {}).get("volumeName") or ""}"')
        if (claim.get("metadata") or {}).get("deletionTimestamp"):
            return PodVolumes(prefilter=f'persistentvolumeclaim "{name}" is being deleted')
        found.append(claim)
    terms: list[tuple[dict, ...]] = []
    provision: list[tuple[str, str]] = []
    in_flight = False
    reason = ""
    for claim in found:
        cmeta = claim.get("metadata") or {}
        if ANN_BIND_COMPLETED in (cmeta.get("annotations") or {}) and (claim.get("spec") or {}).get("volumeName"):
            pv = volumes.get(claim["spec"]["volumeName"])
            required = (((pv or {}).get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}
            if required.get("nodeSelectorTerms"):
                terms.append(tuple(required["nodeSelectorTerms"]))
            continue
        sc = classes.get(claim_class_name(claim))
        if not delays_binding(sc):
            return PodVolumes(prefilter=MSG_UNBOUND_IMMEDIATE)
        assert sc is not None
        if (sc.get("allowedTopologies") or []):
            terms.append(tuple({"matchExpressions": [{"key": e.get("key"), "operator": "In",
                                                      "values": list(e.get("values") or [])}
                                                     for e in t.get("matchLabelExpressions") or []]}
                               for t in sc["allowedTopologies"]))
        if not sc.get("provisioner") or sc.get("provisioner") == "kubernetes.io/no-provisioner":
            reason = R_BIND_CONFLICT  # no volume to match (the sim matches no static volumes here)
        if (cmeta.get("annotations") or {}).get(ANN_SELECTED_NODE):
            in_flight = True
        provision.append((ns, cmeta["name"]))
    return PodVolumes(node_terms=tuple(terms), provision=tuple(provision), in_flight=in_flight,
                      filter_reason=reason)


# The filters kube-scheduler runs before VolumeBinding (NodeUnschedulable, TaintToleration,
# NodeAffinity, NodeResourcesFit): a node failing one of them reports that reason instead.
_BEFORE_VOLUME_BINDING = frozenset({R.R_UNSCHEDULABLE, R.R_TAINT, R.R_SELECTOR, R.R_CPU, R.R_MEMORY, R.R_PODS})


def volume_node_reasons(rule_reasons: Mapping[str, Sequence[str]], nodes: Iterable[Mapping],
                        node_terms: Sequence[Sequence[Mapping]]) -> dict[str, list[str]]:
    """Each node's FailedScheduling reasons for a pod whose bound volumes pin it to
    ``node_terms``: the rules' reasons (``rule_reasons``, from the pod without the volume
    terms) where an earlier filter fails, else VolumeBinding's "volume node affinity conflict"
    where the node misses a volume's node affinity, else the rules' later reasons."""
    probes = [{"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": list(entry)}}}}} for entry in node_terms]
    out: dict[str, list[str]] = {}
    for node in nodes:
        name = node["metadata"]["name"]
        why = list(rule_reasons.get(name) or [])
        early = [r for r in why if r in _BEFORE_VOLUME_BINDING]
        if early:
            out[name] = early
        elif not all(node_affinity_matches(probe, node) for probe in probes):
            out[name] = [R_NODE_CONFLICT]
        elif why:
            out[name] = why
    return out


def volume_fits_node(pv: Mapping, node: Mapping) -> bool:
    """Whether ``node`` satisfies the volume's required node affinity (CSI topology)."""
    terms = ((((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {})
             .get("nodeSelectorTerms") or [])
    probe = {"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": list(terms)}}}}}
    return not terms or node_affinity_matches(probe, node)


def with_node_terms(pod: Mapping, node_terms: Sequence[Sequence[Mapping]]) -> dict:
    """A copy of ``pod`` whose required node affinity also demands every one of ``node_terms``
    (terms within one entry ORed, entries ANDed, as the scheduler ANDs the pod's node affinity
    with VolumeBinding's Filter), for the placement rules to filter nodes with."""
    spec = dict(pod.get("spec") or {})
    affinity = dict(spec.get("affinity") or {})
    node_affinity = dict(affinity.get("nodeAffinity") or {})
    required = dict(node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    combined: list[dict] = [dict(t) for t in required.get("nodeSelectorTerms") or []] or [{}]
    for entry in node_terms:
        combined = [{"matchExpressions": list(a.get("matchExpressions") or []) + list(b.get("matchExpressions") or []),
                     **({"matchFields": list(a.get("matchFields") or []) + list(b.get("matchFields") or [])}
                        if a.get("matchFields") or b.get("matchFields") else {})}
                    for a in combined for b in entry]
    required["nodeSelectorTerms"] = combined
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = required
    affinity["nodeAffinity"] = node_affinity
    spec["affinity"] = affinity
    return {**pod, "spec": spec}
