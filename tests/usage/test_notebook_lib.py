"""The library side of notebook 04 (eafix_capacity/usage/notebook.py), without a kernel or a sim:
the parameters' one-line refusals, the planned rounds, the OOM counts, the right-sizing and the
summary over a small frame, and the sim clock hooks the sampler gets."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from eafix_capacity.errors import ClusterError, InputError
from eafix_capacity.usage import notebook as nb
from eafix_capacity.usage.kubectltop import SampleRun
from eafix_capacity.usage.samples import Termination

from .frames import typed_frame

T0 = datetime(2026, 1, 14, 6, 0, tzinfo=timezone.utc)
MiB = 2**20


@pytest.mark.parametrize(("values", "message"), [
    ({"source": "kubectl"}, r"source: unknown source 'kubectl'; one of: kubectl-top, metrics-api, prometheus"),
    ({"source": "prometheus"}, r"prometheus_url: source prometheus without a URL"),
    ({"prometheus_url": "http://127.0.0.1:9090"}, r"prometheus_url: a Prometheus URL is read only with source"),
    ({"prometheus_end": "2026-01-14T10:00:00Z"}, r"prometheus_end: a window's end is read only with source prometheus"),
    ({"source": "prometheus", "prometheus_url": "http://p:9090", "prometheus_end": "2026-01-14T10:00:00"},
     r"prometheus_end: not an ISO 8601 time with its UTC offset '2026-01-14T10:00:00'"),
    ({"source": "prometheus", "prometheus_url": "http://p:9090", "prometheus_end": "yesterday"},
     r"prometheus_end: not an ISO 8601 time with its UTC offset 'yesterday'"),
    ({"strategy": "krr"}, r"strategy: unknown strategy 'krr'; one of: simple, session-peak, vpa"),
    ({"interval": 0.5}, r"interval: not a number of seconds 0.5; seconds from 1 to"),
    ({"interval": True}, r"interval: not a number of seconds True"),
    ({"duration": math.inf}, r"duration: not a number of seconds inf"),
    ({"interval": 900.0, "duration": 600.0}, r"interval: the interval is longer than the duration 900"),
    ({"kubeconfig": "/k"}, r"kubeconfig: a kubeconfig without a context"),
    ({"context": "prod", "usage_model": "m.yaml"}, r"usage_model: a usage model is the sim's"),
    ({"usage_model": "/nonexistent/model.yaml"}, r"usage_model: not a usage model \(/nonexistent/model.yaml: cannot read usage model"),
    ({"window": "tokyo"}, r"window: unknown session 'tokyo'; one of: london, new_york"),
    ({"service": "nope"}, r"service: not a service of the catalogue 'nope'; one of: data-ingestor"),
    ({"profile": "huge"}, r"profile: unknown profile 'huge'; one of: minimum, recommended"),
    ({"output_dir": ""}, r"output_dir: empty output directory"),
    ({"namespace": 3}, r"namespace: not a string 3"),
    ({"colour": "red"}, r"colour: unknown parameter; one of: context, kubeconfig"),
])
def test_a_bad_parameter_is_one_line_naming_it(values, message):
    with pytest.raises(InputError, match=message) as e:
        nb.NotebookParams.from_notebook(**values)
    assert "\n" not in str(e.value)


def test_the_defaults_are_valid_and_plan_a_trading_day_of_rounds():
    params = nb.NotebookParams.from_notebook()
    assert params.starts_sim and params.source == "metrics-api"
    assert nb.rounds_planned(params) == math.ceil(86400 / 840) == 103
    assert nb.rounds_planned(nb.NotebookParams.from_notebook(interval=300.0)) == 288
    assert not nb.NotebookParams.from_notebook(source="prometheus", prometheus_url="http://p:9090").starts_sim
    assert nb.run_directory(params).as_posix() == "../reports/04_utilisation/samples"
    assert params.window_end() is None
    ended = nb.NotebookParams.from_notebook(source="prometheus", prometheus_url="http://p:9090",
                                            prometheus_end="2026-01-14T11:00:00+01:00")
    assert ended.window_end() == datetime(2026, 1, 14, 10, 0, tzinfo=timezone.utc)
    assert "ending 2026-01-14 10:00:00 UTC" in nb.describe(None, ended)


def _term(pod: str, reason: str, restarts: int, service: str = "execution-engine") -> Termination:
    return Termination(T0, "eafix-sim", "eafix-trading", pod, service, service, reason, restarts, 512 * MiB,
                       "metrics-api")


def test_oom_kills_are_counted_per_workload_container_and_other_exits_are_not():
    terms = [_term("execution-engine-a", "OOMKilled", 1), _term("execution-engine-b", "OOMKilled", 1),
             _term("execution-engine-a", "OOMKilled", 2), _term("risk-manager-a", "Error", 1, "risk-manager")]
    assert nb.oom_kills(terms) == {"execution-engine/execution-engine": 3}
    assert nb.oom_line(terms) == "3 OOM kills: execution-engine/execution-engine x3"
    assert nb.oom_line(terms[3:]) == "no OOM kills"


def _frame(rounds: int):
    rows = []
    for i in range(rounds):
        for pod in ("execution-engine-a", "execution-engine-b"):
            rows.append({"timestamp": T0 + timedelta(minutes=14 * i), "context": "eafix-sim",
                         "namespace": "eafix-trading", "pod": pod, "container": "execution-engine",
                         "service": "execution-engine", "node": "n0", "cpu_m": 50.0 + i % 7,
                         "memory_bytes": 400 * MiB + i, "cpu_request_m": 250, "cpu_limit_m": 500,
                         "memory_request_bytes": 256 * MiB, "memory_limit_bytes": 512 * MiB,
                         "source": "metrics-api"})
    return typed_frame(rows)


def test_right_size_raises_an_oom_killed_limit_and_the_summary_says_so():
    params = nb.NotebookParams.from_notebook(strategy="simple")
    terms = [_term("execution-engine-a", "OOMKilled", 1)]
    observed = nb.Observed(_frame(60), [], terms, {})
    sized = nb.right_size(observed, params)
    (rec,) = sized.recommendations
    assert rec.recommended.memory_limit_bytes == 640 * MiB   # 1.25 x the 512Mi it was killed at
    assert rec.memory_severity == "CRITICAL" and rec.oom_kills == 1
    assert sized.window == "all hours" and sized.changes > 0
    run = SampleRun("eafix-sim", 60, 120, 0, False, T0, T0 + timedelta(hours=14))
    sampled = nb.Sampled(run, "out/samples")
    assert sampled.text() == "60 rounds, 120 samples (0 missing) from 2026-01-14 06:00 to 2026-01-14 20:00 UTC"
    data = nb.summary(params, target={"context": "eafix-sim", "is_sim": True}, sampled=sampled,
                      observed=observed, sized=sized)
    assert data["counts"] == {"rounds": 60, "rounds_planned": 103, "samples": 120, "missing": 0,
                              "stored_samples": 120, "node_samples": 0, "terminations": 1, "oom_kills": 1}
    assert data["oom_kills"] == {"execution-engine/execution-engine": 1}
    (row,) = data["recommendations"]
    assert (row["workload"], row["memory_limit_bytes"], row["samples"]) == ("execution-engine", 640 * MiB, 120)
    assert data["nodes"]["current_nodes"] == sized.replan.current_nodes
    assert "output_dir" not in data["parameters"] and data["parameters"]["strategy"] == "simple"


def test_session_peak_reads_only_the_window():
    params = nb.NotebookParams.from_notebook(strategy="session-peak", window="08:00-09:00 UTC")
    sized = nb.right_size(nb.Observed(_frame(60), [], [], {}), params)
    (rec,) = sized.recommendations
    assert sized.window == "08:00-09:00 UTC"
    assert rec.cpu_unknown and "not enough data" in rec.info[0]   # 5 rounds x 2 pods inside the hour


def test_the_sim_hooks_move_the_clock_and_settle_and_a_busy_sim_is_sampled_as_is():
    calls: list[object] = []

    class Clock:
        def now(self):
            return T0

        def advance(self, s):
            calls.append(("advance", s))

    def settle():
        calls.append("settle")
        if len(calls) > 2:
            raise ClusterError("sim controllers did not settle within 5.0s")

    session = SimpleNamespace(sim=SimpleNamespace(clock=Clock(), settle=settle))
    hooks = nb.sim_clock_hooks(session)
    assert hooks.clock() == T0
    hooks.sleep(840.0)
    hooks.sleep(840.0)   # the busy controllers do not stop the sampling
    assert calls == [("advance", 840.0), "settle", ("advance", 840.0), "settle"]


@pytest.mark.sim
def test_kubectl_top_on_the_sim_moves_its_clock_one_interval_a_round(tmp_path):
    # the one source no notebook test runs (0.36 s a round): two rounds of the real kubectl top
    # on a sim with only its system pods, the sim's clock moved on by the sampler
    from eafix_capacity.cluster.context import load_target
    from eafix_capacity.cluster.notebook import Session
    from eafix_capacity.sim.cluster import SimCluster
    from eafix_capacity.usage.store import UsageStore

    params = nb.NotebookParams.from_notebook(source="kubectl-top", namespace="kube-system", interval=60.0,
                                             duration=120.0, output_dir=str(tmp_path))
    with SimCluster(speed=0, clock_start=T0) as sim:
        assert sim.clock is not None
        target, api = load_target(kubeconfig=sim.kubeconfig, context="eafix-sim")
        session = Session(target, api, sim)
        sim.clock.advance(120)   # past metrics-server's first scrape of the system pods
        start = sim.clock.now()
        try:
            sampled = nb.sample(session, params, quiet=True)
        finally:
            api.close()
        assert sim.clock.now() == start + timedelta(seconds=60)   # one sleep between the two rounds
    run = sampled.run
    assert run is not None and (run.rounds, run.missing, run.interrupted) == (2, 0, False)
    assert run.started == start and run.samples > 0
    with UsageStore.open(sampled.directory, create=False) as store:
        frame = store.frame()
    assert len(frame) == run.samples and set(frame["namespace"]) == {"kube-system"}
    assert set(frame["source"]) == {"kubectl-top"}
    assert sorted(set(frame["timestamp"])) == [start, start + timedelta(seconds=60)]
