"""``ControllerManager``: every sim controller behind one start/stop switch, one pass at a time.

A real cluster's kube-controller-manager, kube-scheduler and kubelets turn Deployments into
running Pods and keep status fields moving; ``kubectl rollout status``, ``wait``, ``drain``
and ``top`` only work because of them. The manager runs the sim's controllers (one module
each, as kube-controller-manager lays them out) in one background thread over the sim's
store: each pass lists the objects once (shared, read-only snapshots), runs every
controller against them and writes the differences back; a pass runs after any relevant
change and the loop stops when a pass writes nothing (a fixpoint), which is what
:meth:`ControllerManager.settle` waits for.
"""
from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from eafix_capacity.errors import ClusterError
from eafix_capacity.sim import resources as R
from eafix_capacity.sim.apierror import StaleError
from eafix_capacity.sim.clock import SimClock
from eafix_capacity.sim.controllers.context import Context, Snapshot
from eafix_capacity.sim.controllers.containerexit import ContainerExits
from eafix_capacity.sim.controllers.cronjob import CronJobController
from eafix_capacity.sim.controllers.daemonset import DaemonSetController
from eafix_capacity.sim.controllers.deployment import DeploymentController
from eafix_capacity.sim.controllers.disruption import DisruptionController
from eafix_capacity.sim.controllers.endpointslice import EndpointSliceController
from eafix_capacity.sim.controllers.garbagecollector import GarbageCollector
from eafix_capacity.sim.controllers.job import JobController
from eafix_capacity.sim.controllers.kubelet import Kubelet
from eafix_capacity.sim.controllers.metricsapi import MetricsApi
from eafix_capacity.sim.controllers.nodelifecycle import NodeLifecycleController
from eafix_capacity.sim.controllers.persistentvolume import PersistentVolumeController
from eafix_capacity.sim.controllers.podautoscaler import HPA_SYNC_SECONDS, HorizontalController
from eafix_capacity.sim.controllers.replicaset import ReplicaSetController
from eafix_capacity.sim.controllers.resourcequota import ResourceQuotaController
from eafix_capacity.sim.controllers.rootcacertpublisher import RootCACertPublisher
from eafix_capacity.sim.controllers.serviceaccounts import ServiceAccountsController
from eafix_capacity.sim.controllers.schedule import SchedulingStep
from eafix_capacity.sim.controllers.statefulset import StatefulSetController
from eafix_capacity.sim.controllers.termination import PodTermination
from eafix_capacity.sim.faults import FaultRule
from eafix_capacity.sim.resources import Registry, ResourceType
from eafix_capacity.sim.usage_model import UsageModel, load_usage_model

_WATCHED = frozenset(rt.key for rt in (R.POD, R.NODE, R.DEPLOYMENT, R.REPLICASET, R.STATEFULSET, R.DAEMONSET,
                                       R.HPA, R.PDB, R.PVC, R.PV, R.STORAGECLASS, R.NAMESPACE, R.SERVICEACCOUNT,
                                       R.RESOURCEQUOTA, R.SECRET, R.CONFIGMAP, R.JOB, R.CRONJOB, R.SERVICE))


class ControllerManager:
    """All sim behaviour behind one start/stop switch (see the module docstring).

    ``kubelet_events``: see :class:`~eafix_capacity.sim.controllers.kubelet.Kubelet`;
    ``provisioners``: see :class:`~eafix_capacity.sim.controllers.persistentvolume.PersistentVolumeController`;
    ``faults``: the sim faults file's rules the kubelet plays out (:mod:`eafix_capacity.sim.faults`).
    """

    def __init__(self, store: Any, registry: Registry, *, clock: SimClock,
                 usage_model_path: str | Path | None = None, seed: int = 0,
                 usage_model: UsageModel | None = None, kubelet_events: bool | None = None,
                 provisioners: Iterable[str] | None = None, faults: tuple[FaultRule, ...] = ()) -> None:
        model = usage_model if usage_model is not None else load_usage_model(usage_model_path)
        self.store = store
        self.clock = clock
        if getattr(store, "clock", None) is None:  # one clock: the store's timestamps follow the controllers'
            store.clock = clock
        self.ctx = ctx = Context(store, registry, clock=clock, model=model, seed=seed, kick=self._kick)
        self.nodes = NodeLifecycleController(ctx)
        self.service_accounts = ServiceAccountsController(store)
        self.root_ca = RootCACertPublisher(store)
        self.quotas = ResourceQuotaController(store)
        self.garbage = GarbageCollector(ctx)
        self.deployments = DeploymentController(ctx)
        self.replicasets = ReplicaSetController(ctx)
        self.statefulsets = StatefulSetController(ctx)
        self.daemonsets = DaemonSetController(ctx)
        self.jobs = JobController(ctx)
        self.cronjobs = CronJobController(ctx)
        self.exits = ContainerExits(ctx)
        self.endpoints = EndpointSliceController(ctx)
        self.volumes = PersistentVolumeController(ctx, provisioners=provisioners)
        self.scheduler = SchedulingStep(ctx, volumes=self.volumes)
        self.kubelet = Kubelet(ctx, kubelet_events=kubelet_events, faults=faults)
        self.disruption = DisruptionController(ctx)
        self.autoscaler = HorizontalController(ctx)
        self.metrics = MetricsApi(ctx)
        self.termination = PodTermination(ctx)
        self._cv = threading.Condition()
        self._seq = 0
        self._done = 0
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._errors: list[BaseException] = []
        store.subscribe(self._on_change)

    @property
    def model(self) -> UsageModel:
        return self.ctx.model

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sim-controllers", daemon=True)
        self._kick()
        self._thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def settle(self, timeout: float = 5.0) -> None:
        """Block until a pass has run after every change so far and written nothing new.

        Also runs the periodic work that is due (HPA syncs after ``clock.advance``). Raises
        ``ClusterError`` when the controllers keep changing things past ``timeout`` or a
        pass failed.
        """
        if self._thread is None:
            self.run_once()
            return
        deadline = time.monotonic() + timeout
        self._kick()
        with self._cv:
            while self._done < self._seq or self._busy:
                if self._errors:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ClusterError(f"sim controllers did not settle within {timeout}s")
                self._cv.wait(remaining)
            if self._errors:
                err = self._errors[-1]
                self._errors.clear()
                raise ClusterError(f"a sim controller pass failed: {err!r}") from err

    def run_once(self, max_passes: int = 1000, *, cancel: threading.Event | None = None) -> int:
        """Run passes in the calling thread until one writes nothing (tests, benchmarks, the
        sim's start-up); ``cancel`` set stops it between passes with ``KeyboardInterrupt``.

        Only without the background thread: two concurrent passes would race each other."""
        if self._thread is not None:
            raise ClusterError("run_once() needs the controllers stopped; use settle() while they run")
        for n in range(1, max_passes + 1):
            if cancel is not None and cancel.is_set():
                raise KeyboardInterrupt
            with self._cv:
                target = self._seq
            self._pass()
            with self._cv:
                if self._seq == target:
                    self._done = target
                    return n
        raise ClusterError(f"sim controllers did not settle within {max_passes} passes")

    def set_usage_model(self, model: UsageModel) -> None:
        """Swap the usage model (what-if load, tests); metrics and the HPA use it from now on."""
        self.ctx.model = model
        self._kick()

    def _kick(self) -> None:
        with self._cv:
            self._seq += 1
            self._cv.notify_all()

    def _on_change(self, etype: str, rt: ResourceType, obj: dict) -> None:
        if rt.key in _WATCHED:
            with self._cv:
                self._seq += 1
                self._cv.notify_all()

    def _tick_seconds(self) -> float:
        speed = self.ctx.clock.speed
        if speed <= 0:
            return 1.0
        return min(1.0, max(0.02, HPA_SYNC_SECONDS / speed / 3))

    def _run(self) -> None:
        while True:
            with self._cv:
                if self._done >= self._seq and not self._stopping:
                    self._cv.wait(self._tick_seconds())
                if self._stopping:
                    return
                target = self._seq
                full = self._done < target
                self._busy = True
            try:
                if full:
                    self._pass()
                else:
                    self._periodic()
            except Exception as e:  # keep serving; settle() reports it
                self._errors.append(e)
                del self._errors[:-5]
            finally:
                with self._cv:
                    self._busy = False
                    if full:
                        self._done = max(self._done, target)
                    self._cv.notify_all()

    def _pass(self) -> None:
        ctx = self.ctx
        ctx.fresh.clear()
        ctx.next_wake = math.inf
        snap = ctx.snapshot()
        self.nodes.sync(snap)
        self.garbage.sync(snap)
        namespaces = ctx.list(R.NAMESPACE)
        self.service_accounts.sync(namespaces)
        self.root_ca.sync(namespaces)
        self.quotas.sync()  # before the workload controllers: a pod deleted last pass frees its quota now
        for d in snap.deployments:
            self._guard(self.deployments.sync, d, snap)
        for rs in snap.replicasets:
            # A ReplicaSet the Deployment step just scaled is synced at its new size.
            self._guard(self.replicasets.sync, ctx.fresh.get(rs["metadata"]["uid"], rs), snap)
        ctx.fresh.clear()
        for sts in snap.statefulsets:
            self._guard(self.statefulsets.sync, sts, snap)
        for ds in snap.daemonsets:
            self._guard(self.daemonsets.sync, ds, snap)
        self.cronjobs.sync_all()
        self.jobs.sync_all(snap)
        self.volumes.sync(snap)
        bound_now = self.scheduler.sync(snap)
        self.kubelet.sync(snap, bound_now)
        self.exits.sync(snap)
        self.endpoints.sync_all(snap)
        self.termination.sync(snap)
        for pdb in snap.pdbs:
            self._guard(self.disruption.sync, pdb, snap)
        self.autoscaler.sync_due(snap.hpas)

    def _periodic(self) -> None:
        """The work due between passes: rollout deadlines and HPA syncs on the sim clock."""
        self.deployments.kick_past_deadlines()
        if self.ctx.clock.elapsed() >= self.ctx.next_wake:
            self.ctx.next_wake = math.inf
            self._kick()
        self.autoscaler.sync_due(self.ctx.list(R.HPA))

    @staticmethod
    def _guard(fn: Callable[[Any, Snapshot], None], obj: Mapping, snap: Snapshot) -> None:
        """Run one object's sync; lost races with other writers are retried next pass."""
        try:
            fn(obj, snap)
        except StaleError:
            pass

    # --- what the API server delegates to controllers ---------------------------------------

    def evict(self, namespace: str, name: str, body: dict) -> dict:
        """The pods/eviction subresource (see :mod:`.disruption`)."""
        return self.disruption.evict(namespace, name, body)

    def metrics_list(self, kind: str, namespace: str | None, name: str | None, label_selector: str | None) -> dict:
        """metrics.k8s.io reads (see :mod:`.metricsapi`)."""
        return self.metrics.metrics_list(kind, namespace, name, label_selector)

    def event(self, involved: Mapping, *, reason: str, message: str, etype: str = "Normal",
              component: str, host: str | None = None, field_path: str | None = None) -> None:
        """Record an Event through the controllers' recorder (see :mod:`.events`)."""
        self.ctx.event(involved, reason=reason, message=message, etype=etype, component=component, host=host,
                       field_path=field_path)
