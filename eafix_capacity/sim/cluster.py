"""``SimCluster``: start the whole sim (store, nodes, API server, controllers) in-process.

A context manager for notebooks and tests, and the engine behind ``eafix-capacity sim up``.
It writes a kubeconfig (context ``eafix-sim``; a fixed dummy token, as the sim checks no
credentials, unless ``auth`` serves HTTPS with tokens and RBAC: :mod:`eafix_capacity.sim.auth`),
creates Node objects from a node type of ``data/node-types.csv`` with capacity and allocatable from the capacity model, and with ``state_file`` keeps its state
durable: every change goes to a write-ahead log that is fsync'ed before the change is
acknowledged, compacted into the state file now and then and on stop (see
:mod:`eafix_capacity.sim.wal`); on start the state is reloaded. Everything that can be
refused (the node count, zones, node type, a foreign state file, a path that cannot be
written) is refused before anything is served.
"""
from __future__ import annotations

import base64
import copy
import ipaddress
import json
import signal
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from eafix_capacity import quantity
from eafix_capacity.errors import ClusterError, InputError, OutputError
from eafix_capacity.fsio import atomic_write_text
from eafix_capacity.limits import MAX_NODES, NODES_LIMIT_TEXT
from eafix_capacity.mesh import Mesh, parse_mesh
from eafix_capacity.pools import PoolSpec
from eafix_capacity.nodes import (CLOUD_OF_PROVIDER, Provider, allocatable, get_node_type, load_node_types,
                                  parse_provider)
from eafix_capacity.sim import crds, defaults, resources as R, storage, system, wal
from eafix_capacity.sim.apierror import NotFoundError
from eafix_capacity.sim.api import KUBERNETES_VERSION, Api
from eafix_capacity.sim.audit import AuditLog
from eafix_capacity.sim.controllers import kubernetesservice, rootcacertpublisher, serviceaccounts
from eafix_capacity.sim.clock import SimClock
from eafix_capacity.sim.faults import load_faults
from eafix_capacity.sim.auth import (ADMIN_USER, MASTERS, Auth, ServingCert, bootstrap_policy, now_from_clock,
                                     parse_token_file, server_ssl_context, serving_cert)
from eafix_capacity.sim.server import ApiServer
from eafix_capacity.zones import DEFAULT_REGION, REGION_OF_CLOUD, zone_labels
from eafix_capacity.sim.store import Store

CONTEXT = "eafix-sim"
DUMMY_TOKEN = "eafix-sim-dummy-token-not-a-secret"
_PROVIDER_OF_CLOUD: dict[str, Provider] = {cloud: provider for provider, cloud in CLOUD_OF_PROVIDER.items()}
DEFAULT_NODE_TYPE = "n2-standard-8"
DEFAULT_NODES = 3
DEFAULT_ZONES = ("a", "b", "c")
ZONE_LABEL = "topology.kubernetes.io/zone"


def check_node_count(nodes: object) -> int:
    """``nodes`` as a node count, 0 to ``MAX_NODES``; ``InputError`` otherwise (pure)."""
    if not isinstance(nodes, int) or isinstance(nodes, bool):
        raise InputError("node count must be an integer", field="nodes", value=nodes, valid=f"0 to {MAX_NODES}")
    if nodes < 0:
        raise InputError("node count must be >= 0, got", field="nodes", value=nodes, valid=f"0 to {MAX_NODES}")
    if nodes > MAX_NODES:
        raise InputError("too many nodes:", field="nodes", value=nodes, valid=NODES_LIMIT_TEXT)
    return nodes


def node_objects(node_type: str, *, nodes: int, zones: tuple[str, ...], provider: Provider | None = None,
                 node_types_path: str | Path | None = None, mesh: Mesh = "none", now: str | None = None) -> list[dict]:
    """Node objects (pure): ``nodes`` nodes of ``node_type`` spread round-robin over ``zones``;
    ``now`` (metav1.Time text, default the wall clock) stamps their conditions."""
    now = now or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    check_node_count(nodes)
    nt = get_node_type(node_type, load_node_types(node_types_path))
    labels = zone_labels(nt.provider, zones)
    provider = provider or _PROVIDER_OF_CLOUD.get(nt.provider, "generic")
    alloc = allocatable(nt, provider=provider, mesh=mesh)
    region = REGION_OF_CLOUD.get(nt.provider, DEFAULT_REGION)
    ds = [{"name": d.name, "cpu_m": d.cpu_m, "memory_bytes": d.memory_bytes} for d in alloc.daemonsets]
    out = []
    for i in range(nodes):
        zone = labels[i % len(labels)]
        name = f"sim-{node_type.replace('.', '-').replace('_', '-').lower()}-{i}"
        capacity = {"cpu": str(nt.vcpus), "memory": f"{nt.memory_bytes // 1024}Ki", "pods": str(alloc.max_pods),
                    "ephemeral-storage": "100Gi"}
        # the model's figure to the byte (not floored to Ki): the scheduler leaves exactly the plan's room
        alloc_res = {"cpu": f"{alloc.cpu_m}m", "memory": str(quantity.from_bytes(alloc.memory_bytes)),
                     "pods": str(alloc.max_pods), "ephemeral-storage": "95Gi"}
        out.append({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": node_type, "topology.kubernetes.io/region": region,
                "topology.kubernetes.io/zone": zone, "eafix.io/sim": "true"},
                "annotations": {"sim.eafix.io/provider": provider,
                                "sim.eafix.io/daemonset-requests": json.dumps(ds, separators=(",", ":"))}},
            "spec": {"podCIDR": f"10.244.{i % 256}.0/24"},
            "status": {
                "capacity": capacity, "allocatable": alloc_res,
                "conditions": [_condition(t, s, r, now) for t, s, r in (
                    ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                    ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                    ("PIDPressure", "False", "KubeletHasSufficientPID"),
                    ("Ready", "True", "KubeletReady"))],
                "addresses": [{"type": "InternalIP", "address": f"10.0.{i // 250}.{i % 250 + 2}"},
                              {"type": "Hostname", "address": name}],
                "nodeInfo": {"kubeletVersion": KUBERNETES_VERSION, "kubeProxyVersion": KUBERNETES_VERSION,
                             "osImage": "EAFIX sim node", "kernelVersion": "6.1.0-sim",
                             "containerRuntimeVersion": "containerd://1.7.0-sim", "operatingSystem": "linux",
                             "architecture": "amd64", "machineID": f"sim-{i}", "systemUUID": f"sim-{i}",
                             "bootID": f"sim-{i}"},
            },
        })
    return out


# The label each managed Kubernetes service puts on a node naming its node pool (GKE node
# pools, EKS managed node groups, AKS agent pools); the kit's own key elsewhere.
NODE_POOL_LABEL: dict[str, str] = {"gke": "cloud.google.com/gke-nodepool", "eks": "eks.amazonaws.com/nodegroup",
                                   "aks": "kubernetes.azure.com/agentpool", "generic": "eafix.io/pool"}
_HOSTNAME_MAX = 63   # kubernetes.io/hostname carries the node name: a label value (IsValidLabelValue)


def pool_node_objects(pools: Sequence[PoolSpec], *, provider: str | None = None,
                      zones: tuple[str, ...] = DEFAULT_ZONES, mesh: Mesh = "none", now: str | None = None,
                      node_types_path: str | Path | None = None) -> list[dict]:
    """Node objects of several pools (pure): each pool's ``nodes`` nodes of its type, named
    ``sim-<pool>-<i>``, spread round-robin over ``zones`` pool by pool (node i in zone i mod
    Z), with the pool's labels, its taints as ``spec.taints`` and the provider's node-pool
    label naming the pool; pod CIDRs and InternalIPs are distinct over all pools."""
    if not pools:
        raise InputError("no pools", field="pools", valid="at least one pool")
    missing = [p.name for p in pools if p.nodes is None]
    if missing:
        raise InputError("sim up --pools needs every pool's node count;", field="nodes", value=missing[0],
                         valid="give the pool a count (nodes: 3), e.g. the one `plan --pools` sized")
    total = sum(p.nodes or 0 for p in pools)
    if total > MAX_NODES:
        raise InputError(f"the pools have {total:,} nodes in all:", field="nodes", value=total,
                         valid=NODES_LIMIT_TEXT)
    types = load_node_types(node_types_path)
    clouds = {p.name: get_node_type(p.node_type, types).provider for p in pools}
    if len(set(clouds.values())) > 1:
        raise InputError("the pools' node types are of different clouds:", field="node_type",
                         value=", ".join(f"{p.name}: {p.node_type} ({clouds[p.name]})" for p in pools),
                         valid="node types of one cloud: a cluster runs on one provider")
    chosen: Provider = parse_provider(provider) if provider is not None else \
        _PROVIDER_OF_CLOUD.get(clouds[pools[0].name], "generic")
    pool_key = NODE_POOL_LABEL[chosen]
    out: list[dict] = []
    for pool in pools:
        longest = f"sim-{pool.name}-{(pool.nodes or 1) - 1}"
        if len(longest) > _HOSTNAME_MAX:
            raise InputError(f"pool name too long for its node names (node {longest} is {len(longest)} characters):",
                             obj=pool.name, field="name", value=pool.name,
                             valid=f"a node name is the label kubernetes.io/hostname, at most {_HOSTNAME_MAX} "
                                   "characters: a shorter pool name")
        nodes = node_objects(pool.node_type, nodes=pool.nodes or 0, zones=zones, provider=chosen,
                             node_types_path=node_types_path, mesh=mesh, now=now)
        for i, node in enumerate(nodes):
            j = len(out)   # the node's index over all pools: its addresses
            name = f"sim-{pool.name}-{i}"
            labels = node["metadata"]["labels"]
            own = {**labels, "kubernetes.io/hostname": name, pool_key: pool.name}
            clash = {k: v for k, v in pool.labels.items() if k in own and own[k] != v}
            if clash:
                key = next(iter(clash))
                raise InputError(f"pool label {key}={clash[key]} contradicts the node's own {key}={own[key]}:",
                                 obj=pool.name, field=f"labels.{key}", value=clash[key],
                                 valid="leave the label to the sim (zones, hostname, instance type and the "
                                       "node-pool label are set for every node)")
            node["metadata"]["labels"] = {**own, **pool.labels}
            if pool.taints:
                # v1.Taint: key, value (omitempty), effect
                node["spec"]["taints"] = [{"key": t.key, **({"value": t.value} if t.value else {}), "effect": t.effect}
                                          for t in pool.taints]
            renumber_node(node, name=name, pod_cidr=f"{ipaddress.IPv4Address('10.244.0.0') + 256 * j}/24",
                          address=f"10.0.{j // 250}.{j % 250 + 2}", machine_id=f"sim-{j}")
            out.append(node)
    return out


def renumber_node(node: dict, *, name: str, pod_cidr: str, address: str, machine_id: str) -> None:
    """Give a built Node object another name (and hostname label), pod CIDR, InternalIP and
    machine id, so nodes built apart stay distinct in one cluster."""
    node["metadata"]["name"] = name
    node["metadata"]["labels"]["kubernetes.io/hostname"] = name
    node["spec"]["podCIDR"] = pod_cidr
    node["status"]["addresses"] = [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}]
    info = node["status"]["nodeInfo"]
    info["machineID"] = info["systemUUID"] = info["bootID"] = machine_id


def _condition(ctype: str, status: str, reason: str, now: str) -> dict:
    return {"type": ctype, "status": status, "reason": reason, "message": f"kubelet: {reason}",
            "lastHeartbeatTime": now, "lastTransitionTime": now}


def kubeconfig_document(url: str, *, token: str = DUMMY_TOKEN, ca_pem: bytes | None = None) -> dict:
    """The sim's kubeconfig; as kind's, one name (``eafix-sim``) for the cluster, context and user."""
    cluster: dict = {"server": url}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {"apiVersion": "v1", "kind": "Config", "current-context": CONTEXT, "preferences": {},
            "clusters": [{"name": CONTEXT, "cluster": cluster}],
            "users": [{"name": CONTEXT, "user": {"token": token}}],
            "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": "default"}}]}


@dataclass(frozen=True)
class NodeSummary:
    """The nodes a started sim serves, for its banner: ``2 x e2-standard-4 in us-central1-a, us-central1-b``."""

    count: int
    types: tuple[tuple[str, int], ...]
    zones: tuple[str, ...]
    restored: bool
    """True when the nodes came from the state file (the node flags were not used)."""

    def describe(self) -> str:
        kinds = " + ".join(f"{n} x {name}" for name, n in self.types) or "no nodes"
        return f"{kinds} in {', '.join(self.zones)}" if self.zones else kinds


def summarize_nodes(nodes: list[dict], *, restored: bool) -> NodeSummary:
    """Count ``nodes`` by instance type and list their zones (pure)."""
    types: Counter[str] = Counter()
    zones: dict[str, None] = {}
    for node in nodes:
        labels = node.get("metadata", {}).get("labels") or {}
        types[str(labels.get("node.kubernetes.io/instance-type", "unknown"))] += 1
        if labels.get(ZONE_LABEL):
            zones[str(labels[ZONE_LABEL])] = None
    return NodeSummary(len(nodes), tuple(sorted(types.items())), tuple(zones), restored)


class SimCluster:
    """A running sim cluster; use as ``with SimCluster(...) as sim: ...``.

    ``node_type``, ``nodes`` and ``zones`` shape the nodes of a new cluster (defaults
    n2-standard-8, 3, a/b/c); a state file that holds nodes keeps its own, and
    ``node_summary`` (after ``start``) says which nodes are served. ``provisioners`` are the
    volume provisioners the sim runs (default: the CSI driver of the nodes' cloud); with
    ``system_pods`` it also holds the StorageClasses that cloud creates."""

    def __init__(self, *, node_type: str | None = None, nodes: int | None = None,
                 zones: tuple[str, ...] | None = None, provider: str | None = None, port: int = 0,
                 kubeconfig: str | Path | None = None, state_file: str | Path | None = None, speed: float = 1.0,
                 seed: int = 0, controllers: bool = True, usage_model_path: str | Path | None = None,
                 wal_compact_bytes: int = wal.COMPACT_MIN_BYTES, mesh: str | None = None,
                 system_pods: bool = True, auth: bool = False, token_file: str | Path | None = None,
                 clock_start: datetime | None = None, provisioners: Sequence[str] | None = None,
                 faults: str | Path | None = None, audit_log: str | Path | None = None,
                 node_objects: Sequence[Mapping[str, Any]] | None = None) -> None:
        self._given = {"nodes": nodes is not None, "node_type": node_type is not None, "zones": zones is not None}
        self.node_type = DEFAULT_NODE_TYPE if node_type is None else node_type
        self.nodes = DEFAULT_NODES if nodes is None else check_node_count(nodes)
        self.zones = DEFAULT_ZONES if zones is None else tuple(zones)
        self.provider = None if provider is None else parse_provider(provider)
        self.mesh: Mesh = parse_mesh(mesh)
        self._want_system = system_pods
        self._provisioners_arg = None if provisioners is None else storage.check_provisioners(provisioners)
        self.provisioners: tuple[str, ...] = ()
        """The provisioners whose volumes the sim creates (after ``start``): ``provisioners``, by
        default the CSI driver of the nodes' cloud (see :mod:`eafix_capacity.sim.storage`)."""
        self.port, self.speed, self.seed = port, speed, seed
        self.state_file = Path(state_file) if state_file else None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._kubeconfig_arg = Path(kubeconfig) if kubeconfig else None
        self._want_controllers = controllers
        self._usage_model_path = usage_model_path
        self.faults = load_faults(faults) if faults is not None else ()
        """The sim faults file's rules (``sim up --faults FILE``), validated here before anything starts."""
        self._wal_compact_bytes = wal_compact_bytes
        self.store: Store | None = None
        self.controllers: Any = None
        self._clock_start = clock_start
        self.clock: SimClock | None = None
        """The one clock of the sim (made by ``start``): timestamps, metrics, grace periods, the HPA.
        It starts at ``clock_start``, by default the wall clock's now (see :mod:`.clock`)."""
        self._server: ApiServer | None = None
        self.journal: wal.Journal | None = None
        self.loaded: wal.LoadedState | None = None
        self.node_summary: NodeSummary | None = None
        self.unused_node_settings: tuple[str, ...] = ()
        """Of ``nodes``, ``node_type``, ``zones``: those given that the restored nodes do not match."""
        self.kubeconfig: Path | None = None
        self._running = False
        self._want_auth = auth
        self._token_file = Path(token_file) if token_file else None
        if self._token_file is not None and not auth:
            raise InputError("a token file is only read with auth (without it every token is accepted):",
                             field="token_file", value=str(token_file), valid="sim up --auth --token-auth-file FILE")
        self.auth: Auth | None = None
        """With ``auth``: the authenticator and authoriser the API enforces (``sim up --auth``)."""
        self._tls: ServingCert | None = None
        self.audit_log = Path(audit_log) if audit_log is not None else None
        """kube-apiserver's ``--audit-log-path``: one ``audit.k8s.io/v1`` Event per request appended here."""
        self._audit: AuditLog | None = None
        self._node_objects = [copy.deepcopy(dict(n)) for n in node_objects] if node_objects is not None else None
        """Nodes to serve instead of ``nodes`` x ``node_type`` (a twin's: :mod:`eafix_capacity.signoff.twin`)."""
        self.snapshot: Any = None
        """For a twin (:meth:`from_context`): the ``TwinSnapshot`` it was started from."""

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self, *, cancel: threading.Event | None = None) -> "SimCluster":
        """Start everything. ``cancel`` (set by a signal handler) stops a long start-up at
        the next safe point with ``KeyboardInterrupt``: an interrupt raised at an arbitrary
        bytecode can land inside a lock or a thread start and leave shutdown waiting on it."""
        if self._running:
            raise ClusterError("the sim cluster is already running")
        if self._kubeconfig_arg is not None:
            _check_parent_is_a_directory(self._kubeconfig_arg, what="the sim kubeconfig")
        loaded = wal.load_state(self.state_file) if self.state_file is not None else None
        self.clock = SimClock(start=self._clock_start, speed=self.speed)
        if self.audit_log is not None:
            self._audit = AuditLog(self.audit_log, now=self.clock.now)  # a bad path is refused before serving
        store = Store(seed=self.seed, clock=self.clock)
        self.controllers, self._running = None, True
        try:
            with store.lock:  # nothing may commit between the restore and the journal taking over
                restored = loaded is not None and loaded.document is not None
                if loaded is not None and loaded.document is not None:
                    self._restore(store, loaded.document, self.state_file)
                has_nodes, cloud = store.count(R.NODE) > 0, ""
                if has_nodes:  # the state's nodes are served; the node flags must still be valid
                    cloud = get_node_type(self.node_type, load_node_types()).provider
                    zone_labels(cloud, self.zones)
                continue_log = loaded is not None and loaded.log_good_length is not None
                if not has_nodes and not continue_log:
                    self._create_nodes(store, cancel)
                if self.state_file is not None and loaded is not None:
                    self.journal = wal.Journal.open(store=store, path=self.state_file, loaded=loaded,
                                                    compact_min_bytes=self._wal_compact_bytes)
                    store.set_journal(self.journal.append)
                if not has_nodes and continue_log:
                    self._create_nodes(store, cancel)  # journaled: the log is continued, not rewritten
                for ns in serviceaccounts.active(store.list_objects(R.NAMESPACE)[0]):
                    # the serviceaccount and root-ca-cert-publisher controllers' work, done before anything runs
                    serviceaccounts.ensure(store, ns)
                    rootcacertpublisher.ensure(store, ns)
                if self._want_system:
                    self._create_system_objects(store)
                cloud_of_nodes = self._node_cloud(store)
                self.provisioners = self._provisioners_arg or (storage.CSI_DRIVER_OF_CLOUD[cloud_of_nodes],)
                if self._want_system:
                    self._create_storage_classes(store, cloud_of_nodes)
                nodes, _, _ = store.list_objects(R.NODE)  # shared, read only
                self.node_summary = summarize_nodes(nodes, restored=restored and has_nodes)
                if self.node_summary.restored:
                    self.unused_node_settings = self._unused_settings(self.node_summary, cloud)
            self.store, self.loaded = store, loaded
            _check_cancel(cancel)
            self.controllers = self._make_controllers(store)
            if self.controllers is not None and self._want_system:
                self.controllers.run_once(cancel=cancel)  # the system pods run before the cluster is served
            api = Api(store, controllers=self.controllers, auth=self._make_auth(store), audit=self._audit)
            try:
                self._server = ApiServer(api, port=self.port,
                                         wait_durable=self.journal.wait_durable if self.journal else None,
                                         ssl_context=server_ssl_context(self._tls) if self._tls else None)
            except (OSError, OverflowError) as e:  # OverflowError: a port outside 0-65535
                raise ClusterError(f"cannot listen on 127.0.0.1:{self.port}: {e}") from e
            kubernetesservice.ensure(store, address="127.0.0.1", port=self._server.port)  # as kube-apiserver at start
            _check_cancel(cancel)
            self._server.start()
            self.kubeconfig = self._write_kubeconfig()
            if self.controllers is not None:
                self.controllers.start()
            _check_cancel(cancel)
        except BaseException:  # KeyboardInterrupt included: leave nothing running or half-saved
            try:
                self._shut_down(store)
            except OutputError:
                pass
            raise
        return self

    def stop(self) -> None:
        if self._running:
            self._shut_down(self.store)

    def _shut_down(self, store: Store | None) -> None:
        if self.controllers is not None:
            self.controllers.stop()
        if store is not None:
            store.close()
        if self._server is not None:
            self._server.stop()
            self._server = None
        journal, self.journal = self.journal, None
        try:
            if journal is not None and store is not None:
                journal.close(detach=lambda: store.set_journal(None))
        finally:
            if self._tmpdir is not None:
                self._tmpdir.cleanup()
                self._tmpdir = None
            if self._audit is not None:
                self._audit.close()
                self._audit = None
            self._running = False

    def __enter__(self) -> "SimCluster":
        return self if self._running else self.start()  # from_context() hands back a started twin

    @classmethod
    def from_context(cls, context: str, *, kubeconfig: str | Path | None = None, namespace: str = "eafix-trading",
                     usage_store: str | Path | None = None, usage_model: str | Path | None = None,
                     clock_start: datetime | None = None, twin_kubeconfig: str | Path | None = None,
                     port: int = 0, audit_log: str | Path | None = None) -> "SimCluster":
        """The started twin of ``context``: its nodes and ``namespace``'s objects read once, read-only,
        onto a frozen-clock sim (:mod:`eafix_capacity.signoff.twin`); ``twin.snapshot`` is what was read."""
        from eafix_capacity.signoff.twin import twin_from_context  # the sign-off imports the sim, not back

        sim, snapshot = twin_from_context(context, kubeconfig=kubeconfig, namespace=namespace,
                                          usage_store=usage_store, usage_model=usage_model, clock_start=clock_start,
                                          twin_kubeconfig=twin_kubeconfig, port=port, audit_log=audit_log)
        sim.snapshot = snapshot
        return sim

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise ClusterError("the sim cluster is not running")
        return self._server.url

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until the controllers have nothing left to do (no-op without controllers)."""
        if self.controllers is not None:
            self.controllers.settle(timeout)

    def run_forever(self, *, ready: Callable[[], None] | None = None,
                    cancel: threading.Event | None = None) -> None:
        """Block until SIGINT or SIGTERM (main thread only), then stop. ``ready`` runs once the
        signals are handled (to print "Press Ctrl-C": from then on Ctrl-C is a clean stop)."""
        stop = cancel or threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            if ready is not None and not stop.is_set():
                ready()
            while not stop.wait(0.5):
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.stop()

    # --- helpers -------------------------------------------------------------------------------

    def _make_controllers(self, store: Store) -> Any:
        if not self._want_controllers:
            return None
        try:
            from eafix_capacity.sim.controllers.manager import ControllerManager
        except ImportError:
            return None
        return ControllerManager(store, store.registry, clock=store.clock or SimClock(speed=self.speed),
                                 usage_model_path=self._usage_model_path, seed=self.seed,
                                 provisioners=self.provisioners, faults=self.faults)

    def set_node_condition(self, name: str, *, ready: bool | None) -> dict:
        """Make node ``name`` Ready (``True``), NotReady (``False``: its kubelet reports the
        container runtime's network not ready) or unreachable (``None``: its kubelet stopped
        posting status, so the node lifecycle controller sets every condition Unknown). The
        node lifecycle controller then taints it and the taint eviction controller evicts
        (see :mod:`eafix_capacity.sim.controllers.nodelifecycle`). Returns the node."""
        from eafix_capacity.sim.controllers.nodelifecycle import node_conditions
        if self.store is None or self.clock is None:
            raise ClusterError("the sim cluster is not running")
        node = self.store.get(R.NODE, None, name)
        status = dict(node.get("status") or {})
        status["conditions"] = node_conditions(status.get("conditions") or [], ready=ready,
                                               now=self.clock.now_text())
        node["status"] = status
        return self.store.update(R.NODE, node, subresource="status")

    def _make_auth(self, store: Store) -> Auth:
        """The API's authenticator; with ``auth``, the bootstrap RBAC policy is created where missing."""
        auth = Auth(store=store, enforce=self._want_auth, now=now_from_clock(self.clock))
        if not self._want_auth:
            return auth
        self._tls = serving_cert()
        if self._token_file is not None:
            try:
                text = self._token_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise InputError(f"cannot read the token file: {e}", file=str(self._token_file),
                                 valid='a CSV file of token,user,uid[,"group1,group2"] lines') from e
            auth.add_tokens(parse_token_file(text, path=str(self._token_file)))
        for rt, obj in bootstrap_policy():
            if not store.exists(rt, None, obj["metadata"]["name"]):
                store.create(rt, obj)
        self.auth = auth
        return auth

    def issue_token(self, user: str, *, groups: tuple[str, ...] = (), uid: str = "") -> str:
        """A bearer token that authenticates as ``user`` in ``groups`` (and system:authenticated),
        as a ``--token-auth-file`` line would; only with ``auth``."""
        if self.auth is None or not self.auth.enforce:
            raise ClusterError("the sim cluster was started without auth: every token is accepted")
        return self.auth.issue_token(user, groups=groups, uid=uid)

    def _write_kubeconfig(self) -> Path:
        if self._kubeconfig_arg is not None:
            path = self._kubeconfig_arg
        else:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="eafix-sim-")
            path = Path(self._tmpdir.name) / "kubeconfig"
        doc = "# eafix-capacity sim cluster: the token below is a fixed dummy value, not a credential.\n"
        token = DUMMY_TOKEN
        if self.auth is not None and self.auth.enforce:
            doc = (f"# eafix-capacity sim cluster with --auth: user {ADMIN_USER} (group {MASTERS}); the token is "
                   "random, valid only while this sim process runs.\n")
            token = self.auth.issue_token(ADMIN_USER, groups=(MASTERS,))
        doc += yaml.safe_dump(kubeconfig_document(self.url, token=token,
                                                  ca_pem=self._tls.ca_pem if self._tls else None), sort_keys=False)
        try:
            atomic_write_text(path, doc)
        except OutputError as e:
            raise OutputError(f"cannot write the sim kubeconfig to {path}: {e}") from e
        return path

    def _unused_settings(self, summary: NodeSummary, cloud: str) -> tuple[str, ...]:
        """The node settings given that differ from the nodes a state file brought back."""
        used_zones = self.zones[:max(1, min(len(self.zones), summary.count))]
        differs = {"nodes": self.nodes != summary.count,
                   "node_type": summary.types != ((self.node_type, summary.count),),
                   "zones": set(zone_labels(cloud, used_zones)) != set(summary.zones)}
        return tuple(name for name in ("nodes", "node_type", "zones") if self._given[name] and differs[name])

    def _create_nodes(self, store: Store, cancel: threading.Event | None = None) -> None:
        if self._node_objects is not None:
            for node in self._node_objects:
                _check_cancel(cancel)
                store.create(R.NODE, copy.deepcopy(node))
            return
        for node in node_objects(self.node_type, nodes=self.nodes, zones=self.zones, provider=self.provider,
                                 mesh=self.mesh, now=store.now_text()):
            _check_cancel(cancel)
            store.create(R.NODE, node)

    def _create_system_objects(self, store: Store) -> None:
        """The provider's kube-system objects (:mod:`eafix_capacity.sim.system`) that the store
        lacks: a cloud's addon manager re-creates a deleted addon, so a restart does too."""
        nodes, _, _ = store.list_objects(R.NODE)
        annotations = (nodes[0]["metadata"].get("annotations") or {}) if nodes else {}
        provider = parse_provider(annotations.get("sim.eafix.io/provider") or self._provider_of_type())
        for obj in system.system_objects(provider, mesh=self.mesh):
            rt = {rt.kind: rt for rt in (R.PRIORITYCLASS, R.SERVICEACCOUNT, R.DAEMONSET, R.DEPLOYMENT)}[obj["kind"]]
            meta = obj["metadata"]
            try:
                store.get(rt, meta.get("namespace"), meta["name"])
                continue
            except NotFoundError:
                pass
            group = obj["apiVersion"].rpartition("/")[0]
            defaults.apply_defaults(obj, group, obj["kind"])
            store.create(rt, obj)

    def _node_cloud(self, store: Store) -> str:
        """The cloud of the served nodes' type (a restored state's own), else of ``node_type``."""
        nodes, _, _ = store.list_objects(R.NODE)
        name = ((nodes[0]["metadata"].get("labels") or {}).get("node.kubernetes.io/instance-type") if nodes
                else None) or self.node_type
        types = load_node_types()
        try:
            return get_node_type(name, types).provider
        except InputError:
            return get_node_type(self.node_type, types).provider

    def _create_storage_classes(self, store: Store, cloud: str) -> None:
        """The StorageClasses a new cluster on ``cloud`` holds, where missing (the addon
        manager's EnsureExists mode)."""
        for sc in storage.cloud_classes(cloud):
            if not store.exists(R.STORAGECLASS, None, sc["metadata"]["name"]):
                store.create(R.STORAGECLASS, sc)

    def _provider_of_type(self) -> Provider:
        if self.provider is not None:
            return self.provider
        return _PROVIDER_OF_CLOUD.get(get_node_type(self.node_type, load_node_types()).provider, "generic")

    @staticmethod
    def _restore(store: Store, document: dict, path: Path | None) -> None:
        try:
            store.restore(document)
            crd_list, _ = store.list(R.CRD)
            for crd in crd_list:
                crds.register(store.registry, crd)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise InputError(f"cannot load sim state: {e}", file=str(path),
                             valid="a state file written by `eafix-capacity sim up --state`") from e


def _check_parent_is_a_directory(path: Path, *, what: str) -> None:
    """Refuse ``path`` now, before anything is served, when a parent of it is a regular file."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"cannot write {what} to {path}: parent {parent} is not a directory")
            return


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise KeyboardInterrupt
