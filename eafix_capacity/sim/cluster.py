"""``SimCluster``: start the whole sim (store, nodes, API server, controllers) in-process.

A context manager for notebooks and tests, and the engine behind ``eafix-capacity sim up``.
It writes a kubeconfig (context ``eafix-sim``, a fixed dummy token: the sim checks no
credentials), creates Node objects from a node type of ``data/node-types.csv`` with
capacity and allocatable from the capacity model, and with ``state_file`` saves every
change atomically (coalesced by a background flusher, flushed on stop) and reloads it on
start.
"""
from __future__ import annotations

import json
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from eafix_capacity.errors import ClusterError, InputError, OutputError
from eafix_capacity.fsio import atomic_write_bytes, atomic_write_text
from eafix_capacity.nodes import CLOUD_OF_PROVIDER, allocatable, get_node_type, load_node_types
from eafix_capacity.sim import crds, resources as R
from eafix_capacity.sim.api import KUBERNETES_VERSION, Api
from eafix_capacity.sim.server import ApiServer
from eafix_capacity.sim.store import Store

CONTEXT = "eafix-sim"
DUMMY_TOKEN = "eafix-sim-dummy-token-not-a-secret"
_PROVIDER_OF_CLOUD = {cloud: provider for provider, cloud in CLOUD_OF_PROVIDER.items()}
_REGION = {"gcp": "us-central1", "aws": "us-east-1", "azure": "eastus"}
_FLUSH_EVERY = 0.5


def zone_label(cloud: str, zone: str) -> str:
    region = _REGION.get(cloud, "local-1")
    if cloud == "aws":
        return f"{region}{zone}"
    return f"{region}-{zone}"


def node_objects(node_type: str, *, nodes: int, zones: tuple[str, ...], provider: str | None = None,
                 node_types_path: str | Path | None = None) -> list[dict]:
    """Node objects (pure): ``nodes`` nodes of ``node_type`` spread round-robin over ``zones``."""
    if nodes < 0:
        raise InputError("node count must be >= 0", field="nodes", value=nodes, valid="0 or more")
    if not zones:
        raise InputError("at least one zone is needed", field="zones", value=zones, valid="e.g. a,b,c")
    nt = get_node_type(node_type, load_node_types(node_types_path))
    provider = provider or _PROVIDER_OF_CLOUD.get(nt.provider, "generic")
    alloc = allocatable(nt, provider=provider)
    region = _REGION.get(nt.provider, "local-1")
    ds = [{"name": d.name, "cpu_m": d.cpu_m, "memory_bytes": d.memory_bytes} for d in alloc.daemonsets]
    out = []
    for i in range(nodes):
        zone = zone_label(nt.provider, zones[i % len(zones)])
        name = f"sim-{node_type.replace('.', '-').replace('_', '-').lower()}-{i}"
        capacity = {"cpu": str(nt.vcpus), "memory": f"{nt.memory_bytes // 1024}Ki", "pods": str(alloc.max_pods),
                    "ephemeral-storage": "100Gi"}
        alloc_res = {"cpu": f"{alloc.cpu_m}m", "memory": f"{alloc.memory_bytes // 1024}Ki",
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
                "conditions": [_condition(t, s, r) for t, s, r in (
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


def _condition(ctype: str, status: str, reason: str) -> dict:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"type": ctype, "status": status, "reason": reason, "message": f"kubelet: {reason}",
            "lastHeartbeatTime": now, "lastTransitionTime": now}


def kubeconfig_document(url: str) -> dict:
    return {"apiVersion": "v1", "kind": "Config", "current-context": CONTEXT, "preferences": {},
            "clusters": [{"name": CONTEXT, "cluster": {"server": url}}],
            "users": [{"name": CONTEXT, "user": {"token": DUMMY_TOKEN}}],
            "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": "default"}}]}


class _Flusher:
    """Saves the store to ``path`` at most every ``_FLUSH_EVERY`` seconds while it changes."""

    def __init__(self, store: Store, path: Path) -> None:
        self.store, self.path = store, path
        self._saved_rv = -1
        self._lock = threading.Lock()  # one write at a time: an older dump must never replace a newer one
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="eafix-sim-state", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        pause = _FLUSH_EVERY
        while not self._stop.wait(pause):
            started = time.monotonic()
            try:
                self.flush()
            except OutputError:  # e.g. disk full: keep serving and retry; stop() reports a lasting failure
                pass
            # a big store is written less often, so saving never takes more than ~1/5 of the time
            pause = max(_FLUSH_EVERY, 4 * (time.monotonic() - started))

    def flush(self) -> None:
        with self._lock:
            if self.store.resource_version == self._saved_rv:
                return
            rv, data = self.store.dump_raw()
            atomic_write_bytes(self.path, data)
            self._saved_rv = rv

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self.flush()
        except OutputError as e:
            raise OutputError(f"cannot save the sim state to {self.path}: {e}") from e


class SimCluster:
    """A running sim cluster; use as ``with SimCluster(...) as sim: ...``."""

    def __init__(self, *, node_type: str = "n2-standard-8", nodes: int = 3, zones: tuple[str, ...] = ("a", "b", "c"),
                 provider: str | None = None, port: int = 0, kubeconfig: str | Path | None = None,
                 state_file: str | Path | None = None, speed: float = 1.0, seed: int = 0,
                 controllers: bool = True, usage_model_path: str | Path | None = None) -> None:
        self.node_type, self.nodes, self.zones = node_type, nodes, tuple(zones)
        self.provider, self.port, self.speed, self.seed = provider, port, speed, seed
        self.state_file = Path(state_file) if state_file else None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._kubeconfig_arg = Path(kubeconfig) if kubeconfig else None
        self._want_controllers = controllers
        self._usage_model_path = usage_model_path
        self.store: Store | None = None
        self.controllers: Any = None
        self.clock: Any = None
        self._server: ApiServer | None = None
        self._flusher: _Flusher | None = None
        self.kubeconfig: Path | None = None
        self._running = False

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> "SimCluster":
        if self._running:
            raise ClusterError("the sim cluster is already running")
        store = Store(seed=self.seed)
        if self.state_file is not None and self.state_file.exists():
            self._load_state(store, self.state_file)
        if store.count(R.NODE) == 0:
            for node in node_objects(self.node_type, nodes=self.nodes, zones=self.zones, provider=self.provider):
                store.create(R.NODE, node)
        self.store = store
        self._running = True
        self.controllers = self._make_controllers(store)
        api = Api(store, controllers=self.controllers)
        try:
            self._server = ApiServer(api, port=self.port)
        except (OSError, OverflowError) as e:  # OverflowError: a port outside 0-65535
            self._running = False
            raise ClusterError(f"cannot listen on 127.0.0.1:{self.port}: {e}") from e
        self._server.start()
        try:
            self.kubeconfig = self._write_kubeconfig()
            if self.controllers is not None:
                self.controllers.start()
            if self.state_file is not None:
                self._flusher = _Flusher(store, self.state_file)
                self._flusher.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.controllers is not None:
            self.controllers.stop()
        if self.store is not None:
            self.store.close()
        if self._server is not None:
            self._server.stop()
            self._server = None
        flusher, self._flusher = self._flusher, None
        try:
            if flusher is not None:
                flusher.stop()
        finally:
            if self._tmpdir is not None:
                self._tmpdir.cleanup()
                self._tmpdir = None
            self._running = False

    def __enter__(self) -> "SimCluster":
        return self.start()

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

    def run_forever(self) -> None:
        """Block until SIGINT or SIGTERM (main thread only), then stop."""
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
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
            from eafix_capacity.sim.clock import SimClock
            from eafix_capacity.sim.controllers import ControllerManager
        except ImportError:
            return None
        self.clock = SimClock(speed=self.speed)
        return ControllerManager(store, store.registry, clock=self.clock, usage_model_path=self._usage_model_path,
                                 seed=self.seed)

    def _write_kubeconfig(self) -> Path:
        if self._kubeconfig_arg is not None:
            path = self._kubeconfig_arg
        else:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="eafix-sim-")
            path = Path(self._tmpdir.name) / "kubeconfig"
        doc = "# eafix-capacity sim cluster: the token below is a fixed dummy value, not a credential.\n"
        doc += yaml.safe_dump(kubeconfig_document(self.url), sort_keys=False)
        try:
            atomic_write_text(path, doc)
        except OutputError as e:
            raise OutputError(f"cannot write the sim kubeconfig to {path}: {e}") from e
        return path

    @staticmethod
    def _load_state(store: Store, path: Path) -> None:
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(state, dict) or not isinstance(state.get("objects", {}), dict):
                raise ValueError("not a sim state document")
            store.restore(state)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(f"cannot load sim state: {e}", file=str(path),
                             valid="a state file written by `eafix-capacity sim up --state`") from e
        crd_list, _ = store.list(R.CRD)
        for crd in crd_list:
            crds.register(store.registry, crd)
