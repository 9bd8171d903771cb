"""A sim container's life as a pure function of sim time: probes, image pulls, crashes, OOM kills.

A real kubelet's status for a container comes from its prober workers (readiness and
startup probes on ``periodSeconds`` ticks after ``initialDelaySeconds``), its image manager
(pull back-off) and its runtime manager (restart back-off of exited containers). The sim
runs no containers, so this module derives the same status from the container's spec, the
fault injected into it (:mod:`eafix_capacity.sim.faults`), whether the usage model drives
its memory above its limit, and the sim-clock seconds since the kubelet started it. Nothing
here reads a clock or a store: the kubelet passes times in and writes what comes out.

Back-off, as client-go's ``flowcontrol.Backoff`` the kubelet uses (no jitter here): 10 s
initial, doubled on each ``Next`` up to 300 s (``MaxContainerBackOff``), forgotten when
nothing updated it for twice the maximum.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Mapping

from eafix_capacity.sim.faults import Fault

BACKOFF_INITIAL = 10.0
"""kubelet ``backOffPeriod``: the first restart and image pull back-off."""
BACKOFF_MAX = 300.0
"""kubelet ``MaxContainerBackOff``: the back-off cap (5m0s)."""
POD_SYNC_RETRY = 10.0
"""pod workers' ``backOffPeriod``: a failed pod sync (an image that did not pull) is retried
this long after (10 s; the real one adds up to 50% jitter)."""
OOM_EXIT_CODE = 137
"""128 + SIGKILL: the exit code of a container the kernel's OOM killer killed."""


def go_duration(seconds: float) -> str:
    """A whole number of seconds as Go's ``time.Duration.String`` prints it: ``10s``, ``1m20s``, ``5m0s``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s}s"
    h, m = divmod(m, 60)
    return f"{h}h{m}m{s}s"


@dataclass(frozen=True)
class Terminated:
    """One finished run: ``startedAt``/``finishedAt`` as sim seconds since the kubelet started the pod."""
    exit_code: int
    reason: str
    started: float
    finished: float


@dataclass(frozen=True)
class ContainerState:
    """A container's status at one moment (times in sim seconds since the pod started).

    ``state`` is ``waiting``, ``running`` or ``terminated``; ``since`` is when a running
    container started; ``next_change`` is the earliest later time this status changes on its
    own (``None``: never), which the kubelet asks the manager to wake it for.
    """
    state: str
    reason: str = ""
    message: str = ""
    since: float = 0.0
    ready: bool = False
    started: bool = False
    restart_count: int = 0
    last: Terminated | None = None
    terminated: Terminated | None = None
    next_change: float | None = None
    probe_failing: bool = False
    """A readiness probe is failing now (the kubelet records ``Unhealthy``)."""
    pulls: int = 0
    """Image pulls tried so far (ErrImagePull), for the kubelet's events."""
    backoff: tuple[float | None, float] = (None, 0.0)
    """The restart back-off after this state (delay, last update), carried into a later OOM episode."""


@dataclass(frozen=True)
class Probe:
    """The timing fields of a probe, with the API defaults."""
    initial_delay: float = 0.0
    period: float = 10.0
    success_threshold: int = 1

    @classmethod
    def of(cls, spec: Mapping | None) -> Probe | None:
        if not spec:
            return None
        return cls(initial_delay=float(spec.get("initialDelaySeconds") or 0),
                   period=float(spec.get("periodSeconds") or 10) or 10.0,
                   success_threshold=max(1, int(spec.get("successThreshold") or 1)))


@dataclass(frozen=True)
class OomEpisode:
    """The usage model drove the container's memory above its limit from ``since`` (sim seconds
    since the pod started) until ``until`` (``None``: still above)."""
    since: float
    until: float | None = None


@dataclass
class _Backoff:
    """client-go ``flowcontrol.Backoff`` for one key (no jitter)."""
    delay: float | None = None
    updated: float = 0.0

    def expired(self, t: float) -> bool:
        return self.delay is None or t - self.updated > 2 * BACKOFF_MAX

    def next(self, t: float) -> None:
        self.delay = BACKOFF_INITIAL if self.expired(t) else min(2 * (self.delay or 0), BACKOFF_MAX)
        self.updated = t


def probe_pass_time(probe: Probe | None, *, origin: float, after: float, immediate: bool) -> float:
    """When a probe that always succeeds first reports success (as pkg/kubelet/prober worker):
    ticks every ``period`` after the container started at ``origin``, none counted before
    ``initialDelaySeconds`` or before ``after`` (readiness waits for the startup probe), then
    ``successThreshold`` successes in a row. ``immediate``: a readiness probe also runs at once
    when it has no result yet (the prober manager's manual trigger)."""
    if probe is None:
        return after
    earliest = max(after, origin + probe.initial_delay)
    if immediate and earliest == after:
        first = after
    else:
        k = max(1, math.ceil((earliest - origin) / probe.period - 1e-9))
        first = origin + k * probe.period
    return first + (probe.success_threshold - 1) * probe.period


def pull_failures(elapsed: float, *, image: str, message: str) -> ContainerState:
    """An image that never pulls (as pkg/kubelet/images EnsureImageExists): a pull at 0, each
    failure a ``Next`` on the image back-off, the pod re-synced :data:`POD_SYNC_RETRY` after
    each failed sync; a sync inside the back-off reports ``ImagePullBackOff`` with the last
    pull error, one past it pulls again (``ErrImagePull``)."""
    backoff = _Backoff()
    t, pulls = 0.0, 0
    pulled_now = False
    while True:
        in_backoff = backoff.delay is not None and t - backoff.updated < backoff.delay
        if not in_backoff:
            pulls += 1
            backoff.next(t)
        pulled_now = not in_backoff
        if t + POD_SYNC_RETRY > elapsed:
            break
        if backoff.delay == BACKOFF_MAX and elapsed - t > 4 * BACKOFF_MAX:
            # Steady state: one pull every 300 s; jump whole cycles.
            skip = math.floor((elapsed - t) / BACKOFF_MAX) - 2
            t += skip * BACKOFF_MAX
            backoff.updated += skip * BACKOFF_MAX
            pulls += skip
        t += POD_SYNC_RETRY
    nxt = t + POD_SYNC_RETRY
    if pulled_now:
        return ContainerState("waiting", "ErrImagePull", message, next_change=nxt, pulls=pulls)
    # Inside the back-off the status changes only at the sync that pulls again.
    pull_at = backoff.updated + (backoff.delay or 0)
    while nxt < pull_at:
        nxt += POD_SYNC_RETRY
    return ContainerState("waiting", "ImagePullBackOff", f'Back-off pulling image "{image}": ErrImagePull: {message}',
                          next_change=nxt, pulls=pulls)


def restart_loop(elapsed: float, *, run_seconds: float, exit_code: int, reason: str, since: float = 0.0,
                 until: float | None = None, restart_policy: str = "Always", restarts: int = 0,
                 last: Terminated | None = None, backoff: tuple[float | None, float] = (None, 0.0),
                 pod_text: str = "", container: str = "") -> ContainerState:
    """A container started at ``since`` that exits ``run_seconds`` after each start until
    ``until`` (as pkg/kubelet/kuberuntime doBackOff): an exit outside the restart back-off
    restarts at once (``Next`` sets it to 10 s, or doubles it), one inside waits with
    ``CrashLoopBackOff`` (``back-off 10s restarting failed container=c pod=p_ns(uid)``) and
    restarts when it ends (``Next`` again); ``restartCount`` counts the restarts. From ``until``
    the current run (or the next start) runs on. ``ready`` is left False; the caller adds probes."""
    bo = _Backoff(*backoff)
    start = since
    while True:
        end = start + run_seconds
        if (until is not None and end >= until) or end > elapsed:
            nxt = end if (until is None or end < until) and end > elapsed else None
            return ContainerState("running", since=start, restart_count=restarts, last=last, next_change=nxt,
                                  backoff=(bo.delay, bo.updated))
        done = Terminated(exit_code, reason, start, end)
        if restart_policy == "Never" or (restart_policy == "OnFailure" and exit_code == 0):
            return ContainerState("terminated", reason, since=start, restart_count=restarts, last=last,
                                  terminated=done, backoff=(bo.delay, bo.updated))
        last = done
        if bo.expired(end):
            bo.next(end)
            start, restarts = end, restarts + 1
            continue
        delay = bo.delay or BACKOFF_INITIAL
        restart_at = end + delay
        if restart_at > elapsed:
            msg = f"back-off {go_duration(delay)} restarting failed container={container} pod={pod_text}"
            return ContainerState("waiting", "CrashLoopBackOff", msg, restart_count=restarts, last=last,
                                  next_change=restart_at, backoff=(bo.delay, bo.updated))
        if delay == BACKOFF_MAX and run_seconds <= BACKOFF_MAX:
            # Steady state: one start per run + 300 s; jump whole cycles (never past ``until``).
            cycle = run_seconds + BACKOFF_MAX
            horizon = elapsed if until is None else min(elapsed, until)
            skip = max(0, math.floor((horizon - restart_at) / cycle) - 1)
            if skip:
                restart_at += skip * cycle
                restarts += skip
                bo.updated = restart_at - cycle
                last = Terminated(exit_code, reason, restart_at - cycle, restart_at - BACKOFF_MAX)
        bo.next(restart_at)
        start, restarts = restart_at, restarts + 1


def with_probes(st: ContainerState, *, readiness: Probe | None, startup: Probe | None, never_ready: bool,
                elapsed: float) -> ContainerState:
    """Add ``started`` and ``ready`` to a container state from its probes (which always pass,
    unless ``never_ready``); probe ticks count from the current run's start."""
    if st.state != "running":
        return st
    origin = st.since
    started_at = probe_pass_time(startup, origin=origin, after=origin, immediate=False)
    changes = [t for t in (st.next_change,) if t is not None]
    if elapsed < started_at:
        changes.append(started_at)
        return replace(st, started=False, ready=False, next_change=min(changes))
    if never_ready:
        return replace(st, started=True, ready=False, probe_failing=readiness is not None)
    ready_at = probe_pass_time(readiness, origin=origin, after=started_at, immediate=True)
    if elapsed >= ready_at:
        return replace(st, started=True, ready=True)
    changes.append(ready_at)
    return replace(st, started=True, ready=False, next_change=min(changes))


def container_state(spec: Mapping, *, fault: Fault | None, elapsed: float, oom: tuple[OomEpisode, ...] = (),
                    restart_policy: str = "Always", pod_text: str = "") -> ContainerState:
    """The status of container ``spec`` ``elapsed`` sim seconds after the kubelet started its pod.

    ``fault``: injected; ``oom``: the episodes (in order) in which the usage model drove the
    container's memory above its limit: each kills it on every start while it lasts (reason
    ``OOMKilled``, exit code 137) under the same restart back-off as any exit. ``pod_text`` is
    the kubelet's ``format.Pod``: ``name_namespace(uid)``.
    """
    name = str(spec.get("name", ""))
    readiness = Probe.of(spec.get("readinessProbe"))
    startup = Probe.of(spec.get("startupProbe"))
    kind = fault.kind if fault is not None else ""
    if fault is not None and kind == "ErrImagePull":
        image = str(spec.get("image", ""))
        return pull_failures(elapsed, image=image, message=fault.message or image_not_found(image))
    if fault is not None and kind == "CrashLoopBackOff":
        st = restart_loop(elapsed, run_seconds=fault.run_seconds, exit_code=fault.exit_code, reason="Error",
                          restart_policy=restart_policy, pod_text=pod_text, container=name)
    else:
        st = ContainerState("running", since=0.0)
        for i, ep in enumerate(oom):
            # ``st`` is the container's state when this episode begins.
            if ep.since > elapsed or st.state == "terminated":
                break
            horizon = oom[i + 1].since if i + 1 < len(oom) and oom[i + 1].since <= elapsed else elapsed
            if st.state == "waiting" and st.next_change is not None:
                begin, restarts = st.next_change, st.restart_count + 1  # killed at the restart
                bo = _Backoff(*st.backoff)
                bo.next(begin)
                backoff = (bo.delay, bo.updated)
            else:
                begin, restarts, backoff = ep.since, st.restart_count, st.backoff
            if begin > horizon:
                continue
            if ep.until is not None and begin >= ep.until:
                if st.state == "waiting":
                    st = replace(st, state="running", reason="", message="", since=begin, restart_count=restarts,
                                 next_change=None, backoff=backoff)
                continue
            st = restart_loop(horizon, run_seconds=0.0, exit_code=OOM_EXIT_CODE, reason="OOMKilled", since=begin,
                              until=ep.until, restart_policy=restart_policy, restarts=restarts, last=st.last,
                              backoff=backoff, pod_text=pod_text, container=name)
    # ReadinessFailure fails the readiness probe: a container without one is Ready when it runs.
    never_ready = kind == "ReadinessFailure" and readiness is not None
    return with_probes(st, readiness=readiness, startup=startup, never_ready=never_ready, elapsed=elapsed)


def image_not_found(image: str) -> str:
    """containerd's error for a tag that does not exist, as the kubelet reports it."""
    ref = normalized_image(image)
    return (f'rpc error: code = NotFound desc = failed to pull and unpack image "{ref}": failed to resolve '
            f'reference "{ref}": {ref}: not found')


def normalized_image(image: str) -> str:
    """docker's ``ParseNormalizedNamed``: ``redis:7`` -> ``docker.io/library/redis:7``; ``:latest`` added."""
    name = image
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and "@" not in last:
        name += ":latest"
    first = name.split("/", 1)[0]
    if "/" not in name:
        return f"docker.io/library/{name}"
    if "." in first or ":" in first or first == "localhost":
        return name
    return f"docker.io/{name}"


@dataclass(frozen=True)
class PodView:
    """What the kubelet derives for a whole pod from its containers' states."""
    phase: str
    ready: bool
    unready: tuple[str, ...]
    next_change: float | None
    containers: tuple[tuple[str, ContainerState], ...] = field(default_factory=tuple)


def pod_view(states: list[tuple[str, ContainerState]], *, restart_policy: str = "Always") -> PodView:
    """The pod phase (as kubelet_pods getPhase) and readiness from its containers' states."""
    waiting = running = stopped = failed = 0
    for _, st in states:
        if st.state == "running":
            running += 1
        elif st.state == "terminated":
            stopped += 1
            if st.terminated is not None and st.terminated.exit_code != 0:
                failed += 1
        elif st.last is not None:
            stopped += 1
        else:
            waiting += 1
    if waiting:
        phase = "Pending"
    elif running:
        phase = "Running"
    elif stopped:
        phase = "Running" if restart_policy == "Always" else ("Failed" if failed else "Succeeded")
    else:
        phase = "Pending"
    unready = tuple(n for n, st in states if not st.ready)
    changes = [st.next_change for _, st in states if st.next_change is not None]
    return PodView(phase, not unready, unready, min(changes) if changes else None, tuple(states))
