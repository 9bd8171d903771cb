"""The event recorder every sim controller, the scheduler and the kubelet write through.

client-go's ``record.EventRecorder`` (what kube-controller-manager and the kubelet use)
writes core/v1 Events and its correlator folds a repeat of the same event into the
existing one's ``count`` instead of a new object; it remembers only the most recent keys
(an LRU cache). This is that recorder over the sim's store.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Mapping

from eafix_capacity.sim import resources as R
from eafix_capacity.sim.apierror import ApiError
from eafix_capacity.sim.clock import SimClock
from eafix_capacity.sim.controllers.common import now_text

INSTANCE_HOST = "eafix-sim"
"""The host part of a reporting instance (``default-scheduler-<host>``): the sim's one control plane."""
EVENT_CACHE_SIZE = 4096
"""Events remembered for aggregation into ``count`` (client-go's ``maxLruCacheEntries``)."""


class EventRecorder:
    def __init__(self, store: Any, clock: SimClock | None = None) -> None:
        self.store = store
        self.clock = clock
        """first/lastTimestamp come from this clock (the sim's), the wall clock without one."""
        self._events: dict[tuple, tuple[str, str, int, float]] = {}
        self._event_seq = 0

    def event(self, involved: Mapping, *, reason: str, message: str, etype: str = "Normal",
              component: str, host: str | None = None, field_path: str | None = None,
              action: str | None = None) -> None:
        """Record an Event, aggregating repeats like the recorder that component uses.

        Without ``action``: client-go's core/v1 recorder (kube-controller-manager, the kubelet):
        ``source``, ``first``/``lastTimestamp`` and ``count``. With ``action``: the events.k8s.io
        recorder (kube-scheduler): ``eventTime`` in microseconds, ``action``, the reporting
        controller and instance, no timestamps or count, and repeats counted in ``series``.
        """
        meta = involved["metadata"]
        ns = meta.get("namespace") or "default"
        key = (meta.get("uid"), reason, message, field_path)
        now = now_text(self.clock)
        known = self._events.get(key)
        if known is not None:
            ev_ns, ev_name, count, last = known
            if self._seconds() - last < 10:
                return
            try:
                ev = self.store.get(R.EVENT, ev_ns, ev_name)
                if action is None:
                    ev["count"] = int(ev.get("count", 1)) + 1
                    ev["lastTimestamp"] = now
                else:
                    ev["series"] = {"count": int((ev.get("series") or {}).get("count", 1)) + 1,
                                    "lastObservedTime": self._micro_now()}
                self.store.update(R.EVENT, ev)
                self._remember_event(key, (ev_ns, ev_name, count + 1, self._seconds()))
                return
            except ApiError:
                self._events.pop(key, None)
        self._event_seq += 1
        name = f"{meta['name']}.{(time.time_ns() + self._event_seq):x}"[:253]
        involved_ref = {"kind": involved.get("kind"), "namespace": meta.get("namespace"), "name": meta["name"],
                        "uid": meta.get("uid"), "apiVersion": involved.get("apiVersion"),
                        "resourceVersion": meta.get("resourceVersion")}
        if not meta.get("namespace"):
            involved_ref.pop("namespace")
        if field_path:
            involved_ref["fieldPath"] = field_path
        source = {"component": component}
        if host:
            source["host"] = host
        body = {"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": ns},
                "involvedObject": involved_ref, "reason": reason, "message": message, "source": source,
                "firstTimestamp": now, "lastTimestamp": now, "count": 1, "type": etype, "eventTime": None,
                "reportingComponent": component, "reportingInstance": host or ""}
        if action is not None:
            body.update({"source": {}, "firstTimestamp": None, "lastTimestamp": None, "eventTime": self._micro_now(),
                         "action": action, "reportingInstance": f"{component}-{host or INSTANCE_HOST}"})
            del body["count"]
        try:
            self.store.create(R.EVENT, body)
        except ApiError:
            return
        self._remember_event(key, (ns, name, 1, self._seconds()))

    def _micro_now(self) -> str:
        """metav1.MicroTime text (``eventTime``): microseconds, ``Z``."""
        now = self.clock.now() if self.clock is not None else datetime.now(timezone.utc)
        return now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def _seconds(self) -> float:
        """Seconds on the sim clock (the wall clock without one), for the 10 s repeat window."""
        return self.clock.elapsed() if self.clock is not None else time.monotonic()

    def _remember_event(self, key: tuple, value: tuple[str, str, int, float]) -> None:
        """Keep the aggregation key of the :data:`EVENT_CACHE_SIZE` most recent events, like
        client-go's event correlator (an LRU cache): a repeat of an older one is a new Event."""
        self._events.pop(key, None)
        self._events[key] = value
        while len(self._events) > EVENT_CACHE_SIZE:
            del self._events[next(iter(self._events))]
