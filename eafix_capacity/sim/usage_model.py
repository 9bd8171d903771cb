"""The usage model behind the sim cluster's metrics API.

A real cluster's ``kubectl top`` reports what containers actually use; the sim has no
containers, so it derives usage from their requests with a per-service share, a
trading-session curve (quiet at night, busy in the London and New York sessions, peaking
in their overlap) and seeded noise. Everything here is pure: the same model, pod, time
and seed always give the same figures, which keeps notebooks and tests reproducible.
The model is a YAML file users can edit (``data/usage-model.yaml``).
"""
from __future__ import annotations

import functools
import hashlib
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from eafix_capacity import quantity
from eafix_capacity.errors import InputError, QuantityError
from eafix_capacity.paths import data_file
from eafix_capacity.yamlio import load_yaml_text

SERVICE_LABEL = "app.kubernetes.io/name"
DEFAULT_MODEL_PATH = data_file("usage-model.yaml")

def cpu_nanocores(text: object) -> int:
    """CPU quantity to nanocores, rounded up to nano precision like the API server."""
    return math.ceil(quantity.parse(text).value * 10**9)  # type: ignore[arg-type]


def memory_bytes(text: object) -> int:
    return quantity.parse(text).int_value()  # type: ignore[arg-type]


@dataclass(frozen=True)
class ServiceUsage:
    cpu: float
    memory: float
    cpu_session: float
    memory_session: float


@dataclass(frozen=True)
class Session:
    name: str
    open_minute: int
    close_minute: int


@dataclass(frozen=True)
class UsageModel:
    """A validated usage model; build it with :func:`load_usage_model` or :func:`parse_usage_model`."""

    services: Mapping[str, ServiceUsage]
    sessions: tuple[Session, ...]
    quiet: float = 0.3
    session: float = 1.0
    overlap: float = 1.6
    ramp_minutes: float = 30.0
    noise: float = 0.08
    noise_period_seconds: float = 30.0
    seed: int = 0
    no_request_cpu_nanocores: int = 10_000_000
    no_request_memory_bytes: int = 32 * 2**20
    node_overhead_cpu_nanocores: int = 120_000_000
    node_overhead_memory_bytes: int = 700 * 2**20
    source: str = "<memory>"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def service(self, labels: Mapping[str, str] | None) -> ServiceUsage:
        name = (labels or {}).get(SERVICE_LABEL, "default")
        return self.services.get(name) or self.services["default"]

    def session_level(self, t: datetime) -> float:
        """The session multiplier at ``t``: ``quiet`` .. ``session`` .. ``overlap``."""
        t = t.astimezone(timezone.utc)
        if t.weekday() >= 5:
            return self.quiet
        minute = t.hour * 60 + t.minute + t.second / 60 + t.microsecond / 60e6
        openness = sorted((self._openness(s, minute) for s in self.sessions), reverse=True)
        first = openness[0] if openness else 0.0
        second = openness[1] if len(openness) > 1 else 0.0
        return self.quiet + (self.session - self.quiet) * first + (self.overlap - self.session) * second

    def _openness(self, s: Session, minute: float) -> float:
        """0 when closed, 1 when fully open, linear over the ramp at both edges."""
        ramp = self.ramp_minutes
        if ramp <= 0:
            return 1.0 if s.open_minute <= minute < s.close_minute else 0.0
        up = (minute - s.open_minute) / ramp
        down = (s.close_minute - minute) / ramp
        return max(0.0, min(1.0, up, down))

    def _noise(self, key: str, container: str, t: datetime, what: str) -> float:
        if self.noise == 0:
            return 0.0
        bucket = int(t.timestamp() // self.noise_period_seconds) if self.noise_period_seconds > 0 else 0
        digest = hashlib.blake2b(f"{self.seed}|{key}|{container}|{bucket}|{what}".encode(), digest_size=8).digest()
        uniform = int.from_bytes(digest, "big") / 2**64
        return (2 * uniform - 1) * self.noise

    def usage(
        self,
        pod_labels: Mapping[str, str] | None,
        container: str,
        requests: Mapping[str, object] | None,
        limits: Mapping[str, object] | None,
        t: datetime,
        *,
        key: str = "",
        clamp: bool = True,
    ) -> tuple[int, int]:
        """(cpu nanocores, memory bytes) one container uses at ``t``.

        ``key`` identifies the pod (e.g. ``namespace/name``) so two replicas get different
        noise; requests/limits are the container's ``resources`` maps (quantity strings).
        ``clamp=False``: the memory the container would want, even above its limit (the
        kubelet's OOM kill; metrics never show more than the limit).
        """
        svc = self.service(pod_labels)
        level = self.session_level(t)
        requests = requests or {}
        limits = limits or {}
        cpu_req = cpu_nanocores(requests["cpu"]) if "cpu" in requests else (
            cpu_nanocores(limits["cpu"]) if "cpu" in limits else None)
        mem_req = memory_bytes(requests["memory"]) if "memory" in requests else (
            memory_bytes(limits["memory"]) if "memory" in limits else None)
        cpu_mult = 1 + svc.cpu_session * (level - 1)
        mem_mult = 1 + svc.memory_session * (level - 1)
        if cpu_req is None:
            cpu = self.no_request_cpu_nanocores * cpu_mult
        else:
            cpu = cpu_req * svc.cpu * cpu_mult
        if mem_req is None:
            mem = self.no_request_memory_bytes * mem_mult
        else:
            mem = mem_req * svc.memory * mem_mult
        cpu *= 1 + self._noise(key, container, t, "cpu")
        mem *= 1 + self._noise(key, container, t, "memory") / 4  # memory is steadier than CPU
        cpu_i = max(0, int(round(cpu)))
        mem_i = max(0, int(round(mem)))
        if "cpu" in limits:
            cpu_i = min(cpu_i, cpu_nanocores(limits["cpu"]))
        if "memory" in limits and clamp:
            mem_i = min(mem_i, memory_bytes(limits["memory"]))
        return cpu_i, mem_i

    def memory_ceiling(self, pod_labels: Mapping[str, str] | None, requests: Mapping[str, object] | None,
                       limits: Mapping[str, object] | None) -> int:
        """An upper bound of the memory :meth:`usage` can want at any time (session peak, full noise)."""
        svc = self.service(pod_labels)
        requests, limits = requests or {}, limits or {}
        mem_req = memory_bytes(requests["memory"]) if "memory" in requests else (
            memory_bytes(limits["memory"]) if "memory" in limits else None)
        mult = max(1 + svc.memory_session * (level - 1) for level in (self.quiet, self.session, self.overlap, 1.0))
        base = self.no_request_memory_bytes if mem_req is None else mem_req * svc.memory
        return int(math.ceil(base * max(mult, 0.0) * (1 + abs(self.noise) / 4))) + 1


def usage(
    model: UsageModel,
    pod_labels: Mapping[str, str] | None,
    container: str,
    requests: Mapping[str, object] | None,
    limits: Mapping[str, object] | None,
    t: datetime,
    *,
    key: str = "",
) -> tuple[int, int]:
    """Function form of :meth:`UsageModel.usage`."""
    return model.usage(pod_labels, container, requests, limits, t, key=key)


# --- loading and validation -------------------------------------------------------------

_SERVICE_FIELDS = ("cpu", "memory", "cpu_session", "memory_session")
_TOP_FIELDS = {"seed", "noise", "noise_period_seconds", "sessions", "ramp_minutes", "levels",
               "no_request", "node_overhead", "services"}
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def load_usage_model(path: str | Path | None = None) -> UsageModel:
    """Read and validate a usage model file (the shipped one by default)."""
    path = Path(path) if path is not None else DEFAULT_MODEL_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read usage model: {e.strerror}", file=str(path)) from e
    return _parsed(text, str(path))


@functools.lru_cache(maxsize=8)
def _parsed(text: str, source: str) -> UsageModel:
    """One parse per distinct file text: every sim start reads the model (tests start hundreds)."""
    return parse_usage_model(load_yaml_text(text, file=source), source=source)


def _number(value: object, *, source: str, obj: str | None, fld: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise InputError("must be a number", file=source, obj=obj, field=fld, value=value,
                         valid=f"a number from {low} to {high}")
    if not low <= value <= high:
        raise InputError("out of range", file=source, obj=obj, field=fld, value=value,
                         valid=f"a number from {low} to {high}")
    return float(value)


def _quantity(value: object, *, source: str, obj: str, fld: str, cpu: bool) -> int:
    try:
        amount = cpu_nanocores(value) if cpu else memory_bytes(value)
    except (QuantityError, TypeError) as e:
        raise InputError("not a Kubernetes quantity", file=source, obj=obj, field=fld, value=value,
                         valid='a quoted quantity such as "100m" or "512Mi"') from e
    if amount < 0:
        raise InputError("must not be negative", file=source, obj=obj, field=fld, value=value)
    return amount


def _mapping(value: object, *, source: str, obj: str | None, fld: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise InputError("must be a mapping", file=source, obj=obj, field=fld, value=value)
    return value


def parse_usage_model(data: object, *, source: str = "<memory>") -> UsageModel:
    """Validate already-parsed YAML; every error names the file, service, field and value."""
    data = _mapping(data, source=source, obj=None, fld="(top level)")
    unknown = sorted(set(data) - _TOP_FIELDS)
    if unknown:
        raise InputError("unknown field", file=source, field=unknown[0], value=unknown[0],
                         valid="one of " + ", ".join(sorted(_TOP_FIELDS)))
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError("must be an integer", file=source, field="seed", value=seed)
    noise = _number(data.get("noise", 0.08), source=source, obj=None, fld="noise", low=0, high=0.9)
    period = _number(data.get("noise_period_seconds", 30), source=source, obj=None,
                     fld="noise_period_seconds", low=1, high=86400)
    ramp = _number(data.get("ramp_minutes", 30), source=source, obj=None, fld="ramp_minutes", low=0, high=240)

    sessions_raw = _mapping(data.get("sessions", {}), source=source, obj=None, fld="sessions")
    sessions = []
    for name, spec in sessions_raw.items():
        spec = _mapping(spec, source=source, obj=f"session {name}", fld="sessions")
        minutes = []
        for edge in ("open", "close"):
            value = spec.get(edge)
            m = _HHMM.match(value) if isinstance(value, str) else None
            if not m:
                raise InputError("not a time of day", file=source, obj=f"session {name}", field=edge,
                                 value=value, valid='a quoted UTC time "HH:MM", e.g. "08:00"')
            minutes.append(int(m.group(1)) * 60 + int(m.group(2)))
        if minutes[1] <= minutes[0]:
            raise InputError("session closes before it opens", file=source, obj=f"session {name}",
                             field="close", value=spec.get("close"), valid=f"a time after {spec.get('open')}")
        sessions.append(Session(str(name), minutes[0], minutes[1]))

    levels = _mapping(data.get("levels", {}), source=source, obj=None, fld="levels")
    for k in levels:
        if k not in ("quiet", "session", "overlap"):
            raise InputError("unknown level", file=source, field=f"levels.{k}", value=k,
                             valid="quiet, session or overlap")
    quiet = _number(levels.get("quiet", 0.3), source=source, obj=None, fld="levels.quiet", low=0, high=100)
    sess = _number(levels.get("session", 1.0), source=source, obj=None, fld="levels.session", low=0, high=100)
    overlap = _number(levels.get("overlap", 1.6), source=source, obj=None, fld="levels.overlap", low=0, high=100)

    no_req = _mapping(data.get("no_request", {}), source=source, obj=None, fld="no_request")
    overhead = _mapping(data.get("node_overhead", {}), source=source, obj=None, fld="node_overhead")

    services_raw = _mapping(data.get("services"), source=source, obj=None, fld="services")
    services: dict[str, ServiceUsage] = {}
    for name, spec in services_raw.items():
        obj = f"service {name}"
        spec = _mapping(spec, source=source, obj=obj, fld="services")
        for k in spec:
            if k not in _SERVICE_FIELDS:
                raise InputError("unknown field", file=source, obj=obj, field=str(k), value=k,
                                 valid="one of " + ", ".join(_SERVICE_FIELDS))
        for k in ("cpu", "memory"):
            if k not in spec:
                raise InputError("missing field", file=source, obj=obj, field=k,
                                 valid="a share of the request, e.g. 0.4")
        services[str(name)] = ServiceUsage(
            cpu=_number(spec["cpu"], source=source, obj=obj, fld="cpu", low=0, high=100),
            memory=_number(spec["memory"], source=source, obj=obj, fld="memory", low=0, high=100),
            cpu_session=_number(spec.get("cpu_session", 1.0), source=source, obj=obj, fld="cpu_session", low=0, high=1),
            memory_session=_number(spec.get("memory_session", 0.0), source=source, obj=obj,
                                   fld="memory_session", low=0, high=1),
        )
    if "default" not in services:
        raise InputError("missing the default entry", file=source, field="services.default",
                         valid="a `default` service used for pods that match no other entry")
    return UsageModel(
        services=services,
        sessions=tuple(sessions),
        quiet=quiet, session=sess, overlap=overlap, ramp_minutes=ramp,
        noise=noise, noise_period_seconds=period, seed=seed,
        no_request_cpu_nanocores=_quantity(no_req.get("cpu", "10m"), source=source, obj="no_request", fld="cpu",
                                           cpu=True),
        no_request_memory_bytes=_quantity(no_req.get("memory", "32Mi"), source=source, obj="no_request",
                                          fld="memory", cpu=False),
        node_overhead_cpu_nanocores=_quantity(overhead.get("cpu", "120m"), source=source, obj="node_overhead",
                                              fld="cpu", cpu=True),
        node_overhead_memory_bytes=_quantity(overhead.get("memory", "700Mi"), source=source, obj="node_overhead",
                                             fld="memory", cpu=False),
        source=source,
    )


def constant_model(cpu: float, memory: float = 0.5, *, noise: float = 0.0) -> UsageModel:
    """A flat model (no session curve) using ``cpu``/``memory`` of every request: for what-ifs and tests."""
    return UsageModel(
        services={"default": ServiceUsage(cpu=cpu, memory=memory, cpu_session=0.0, memory_session=0.0)},
        sessions=(), noise=noise, source="<constant>",
    )
