"""Pure tests of the sim scheduler adapter: placement, filters and kube-scheduler's messages."""
from __future__ import annotations

import pytest

from eafix_capacity.sim.scheduler import (Binding, Failure, fit_error_message, num_feasible_nodes_to_find,
                                          pod_requests, schedule_pending, selector_matches)


def node(name: str, *, cpu: str = "4", memory: str = "16Gi", pods: str = "110", zone: str = "a",
         unschedulable: bool = False, taints: list | None = None, labels: dict | None = None) -> dict:
    lab = {"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": zone, **(labels or {})}
    spec: dict = {}
    if unschedulable:
        spec["unschedulable"] = True
    if taints:
        spec["taints"] = taints
    return {"metadata": {"name": name, "labels": lab}, "spec": spec,
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods}}}


def pod(name: str, *, cpu: str = "100m", memory: str = "128Mi", node_name: str | None = None,
        labels: dict | None = None, ts: str = "2026-01-01T00:00:00Z", owner: str | None = None, **spec) -> dict:
    meta: dict = {"name": name, "namespace": "eafix", "labels": labels or {"app": name.rsplit("-", 1)[0]},
                  "creationTimestamp": ts}
    if owner:
        meta["ownerReferences"] = [{"uid": owner, "controller": True, "kind": "ReplicaSet"}]
    body = {"metadata": meta,
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}],
                     **spec},
            "status": {"phase": "Running" if node_name else "Pending"}}
    if node_name:
        body["spec"]["nodeName"] = node_name
    return body


def one(nodes, pods) -> Binding | Failure:
    results = schedule_pending(nodes, pods)
    assert len(results) == 1
    return results[0]


def test_message_format_matches_kube_scheduler():
    msg = fit_error_message(3, {"a": ["Insufficient cpu"], "b": ["Insufficient cpu"],
                                "c": ["Insufficient cpu", "Insufficient memory"]})
    assert msg == ("0/3 nodes are available: 1 Insufficient memory, 3 Insufficient cpu. "
                   "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.")


def test_message_mixes_unresolvable_and_resolvable_reasons():
    msg = fit_error_message(3, {"a": ["node(s) were unschedulable"], "b": ["Insufficient cpu"],
                                "c": ["node(s) didn't match Pod's node affinity/selector"]})
    assert msg == ("0/3 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match Pod's node "
                   "affinity/selector, 1 node(s) were unschedulable. preemption: 0/3 nodes are available: "
                   "1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling.")


def test_no_nodes():
    r = one([], [pod("x")])
    assert isinstance(r, Failure) and r.message == "0/0 nodes are available."


def test_insufficient_cpu_everywhere():
    r = one([node("n1"), node("n2"), node("n3")], [pod("big", cpu="64")])
    assert isinstance(r, Failure)
    assert r.message.startswith("0/3 nodes are available: 3 Insufficient cpu.")


def test_requests_add_up_against_allocatable():
    nodes = [node("n1", cpu="1")]
    results = schedule_pending(nodes, [pod("a-1", cpu="600m"), pod("a-2", cpu="600m", ts="2026-01-01T00:00:01Z")])
    assert isinstance(results[0], Binding) and results[0].node == "n1"
    assert isinstance(results[1], Failure) and "1 Insufficient cpu" in results[1].message


def test_too_many_pods():
    r = one([node("n1", pods="1")], [pod("a", node_name="n1"), pod("b")])
    assert isinstance(r, Failure) and "1 Too many pods." in r.message


def test_cordoned_node_is_skipped():
    r = one([node("n1", unschedulable=True), node("n2")], [pod("x")])
    assert isinstance(r, Binding) and r.node == "n2"
    r = one([node("n1", unschedulable=True)], [pod("x")])
    assert isinstance(r, Failure)
    assert r.message == ("0/1 nodes are available: 1 node(s) were unschedulable. preemption: 0/1 nodes are "
                         "available: 1 Preemption is not helpful for scheduling.")


def test_taints_and_tolerations():
    taint = [{"key": "dedicated", "value": "trading", "effect": "NoSchedule"}]
    r = one([node("n1", taints=taint)], [pod("x")])
    assert isinstance(r, Failure) and "1 node(s) had untolerated taint {dedicated: trading}." in r.message
    tol = [{"key": "dedicated", "operator": "Equal", "value": "trading", "effect": "NoSchedule"}]
    r = one([node("n1", taints=taint)], [pod("x", tolerations=tol)])
    assert isinstance(r, Binding)
    prefer = [{"key": "soft", "effect": "PreferNoSchedule"}]
    assert isinstance(one([node("n1", taints=prefer)], [pod("x")]), Binding)


def test_node_selector_and_required_node_affinity():
    nodes = [node("n1", labels={"pool": "a"}), node("n2", labels={"pool": "b"})]
    r = one(nodes, [pod("x", nodeSelector={"pool": "b"})])
    assert isinstance(r, Binding) and r.node == "n2"
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["a"]}]}]}}}
    r = one(nodes, [pod("x", affinity=affinity)])
    assert isinstance(r, Binding) and r.node == "n1"
    r = one(nodes, [pod("x", nodeSelector={"pool": "c"})])
    assert isinstance(r, Failure) and "2 node(s) didn't match Pod's node affinity/selector." in r.message


def test_least_allocated_node_wins():
    nodes = [node("n1"), node("n2")]
    r = one(nodes, [pod("busy", cpu="2", node_name="n1"), pod("x")])
    assert isinstance(r, Binding) and r.node == "n2"


def test_replicas_of_one_owner_spread_over_nodes():
    nodes = [node("n1"), node("n2"), node("n3")]
    pods = [pod(f"web-{i}", owner="rs-1", labels={"app": "web"}, ts=f"2026-01-01T00:00:0{i}Z") for i in range(3)]
    assert sorted(r.node for r in schedule_pending(nodes, pods)) == ["n1", "n2", "n3"]


def test_required_anti_affinity_per_hostname():
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "redis"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    nodes = [node("n1"), node("n2")]
    pods = [pod(f"redis-{i}", labels={"app": "redis"}, affinity=anti, ts=f"2026-01-01T00:00:0{i}Z")
            for i in range(3)]
    results = schedule_pending(nodes, pods)
    assert sorted(r.node for r in results[:2] if isinstance(r, Binding)) == ["n1", "n2"]
    assert isinstance(results[2], Failure)
    assert "2 node(s) didn't match pod anti-affinity rules." in results[2].message
    assert "2 No preemption victims found for incoming pod." in results[2].message


def test_existing_pods_anti_affinity_blocks_newcomers():
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    r = one([node("n1")], [pod("guard", labels={"app": "guard"}, affinity=anti, node_name="n1"),
                           pod("web-1", labels={"app": "web"})])
    assert isinstance(r, Failure) and "node(s) didn't satisfy existing pods anti-affinity rules" in r.message


def test_topology_spread_across_zones():
    spread = [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "risk"}}}]
    nodes = [node("a1", zone="a"), node("a2", zone="a"), node("b1", zone="b")]
    pods = [pod(f"risk-{i}", labels={"app": "risk"}, topologySpreadConstraints=spread,
                ts=f"2026-01-01T00:00:0{i}Z") for i in range(4)]
    placed = [r.node for r in schedule_pending(nodes, pods)]
    zones = [n[0] for n in placed]
    assert zones.count("a") == 2 and zones.count("b") == 2


def test_topology_spread_refuses_skew():
    spread = [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "risk"}}}]
    nodes = [node("a1", zone="a"), node("b1", zone="b", cpu="100m")]
    pods = [pod("risk-0", labels={"app": "risk"}, node_name="a1"),
            pod("risk-1", labels={"app": "risk"}, topologySpreadConstraints=spread, cpu="500m")]
    r = schedule_pending(nodes, pods)[0]
    assert isinstance(r, Failure)
    assert "1 node(s) didn't match pod topology spread constraints" in r.message
    assert "1 Insufficient cpu" in r.message


def test_spread_missing_label_is_unresolvable():
    spread = [{"maxSkew": 1, "topologyKey": "rack", "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "x"}}}]
    r = one([node("n1")], [pod("x-1", labels={"app": "x"}, topologySpreadConstraints=spread)])
    assert isinstance(r, Failure)
    assert "(missing required label)" in r.message and "Preemption is not helpful" in r.message


def test_pod_requests_with_init_and_sidecars():
    p = pod("x", cpu="100m", memory="100Mi")
    p["spec"]["initContainers"] = [
        {"name": "init", "resources": {"requests": {"cpu": "500m", "memory": "50Mi"}}},
        {"name": "mesh", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}},
    ]
    assert pod_requests(p) == (500, (100 + 128) * 2**20)


def test_selector_matches_expressions():
    sel = {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe"]},
                                                               {"key": "canary", "operator": "DoesNotExist"}]}
    assert selector_matches(sel, {"app": "web", "tier": "fe"})
    assert not selector_matches(sel, {"app": "web", "tier": "fe", "canary": "1"})
    assert not selector_matches(None, {"app": "web"})
    assert selector_matches({}, {"anything": "x"})


@pytest.mark.parametrize("n, want", [(3, 3), (99, 99), (100, 100), (1000, 420), (5000, 500), (20000, 1000)])
def test_sample_size_like_kube_scheduler(n, want):
    assert num_feasible_nodes_to_find(n) == want


def test_pod_affinity_counts_only_pods_matching_every_term():
    # interpodaffinity counts an existing pod for the incoming pod's terms only when it
    # matches all of them: a pod of app=a next door does not satisfy terms [a, b]
    terms = [{"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": "kubernetes.io/hostname"}
             for app in ("a", "b")]
    affinity = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": terms}}
    r = one([node("n1"), node("n2")], [pod("a-0", labels={"app": "a"}, node_name="n1"),
                                       pod("b-0", labels={"app": "b"}, affinity=affinity)])
    assert isinstance(r, Failure)
    assert r.message == ("0/2 nodes are available: 2 node(s) didn't match pod affinity rules. preemption: 0/2 "
                         "nodes are available: 2 Preemption is not helpful for scheduling.")


def test_pod_affinity_first_pod_of_a_self_selecting_group_goes_anywhere():
    affinity = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "topology.kubernetes.io/zone"}]}}
    nodes = [node("n1", zone="a"), node("n2", zone="b")]
    results = schedule_pending(nodes, [pod("cache-0", labels={"app": "cache"}, affinity=affinity),
                                       pod("cache-1", labels={"app": "cache"}, affinity=affinity,
                                           cpu="3950m", ts="2026-01-01T00:00:01Z")])
    assert isinstance(results[0], Binding)
    # the second must join the first's zone, where the first took room: it does not fit
    assert isinstance(results[1], Failure)
    assert "1 node(s) didn't match pod affinity rules" in results[1].message
    assert "1 Insufficient cpu" in results[1].message


def test_spread_min_domains_and_schedule_anyway():
    spread = {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
              "labelSelector": {"matchLabels": {"app": "x"}}, "minDomains": 3}
    nodes = [node("a1", zone="a"), node("b1", zone="b")]
    # two zones of three required: the minimum counts as 0, so a second pod in a zone that has one is refused
    r = one(nodes, [pod("x-0", labels={"app": "x"}, node_name="a1"), pod("x-1", labels={"app": "x"}, node_name="b1"),
                    pod("x-2", labels={"app": "x"}, topologySpreadConstraints=[spread])])
    assert isinstance(r, Failure) and "2 node(s) didn't match pod topology spread constraints." in r.message
    soft = dict(spread, whenUnsatisfiable="ScheduleAnyway")
    r = one(nodes, [pod("x-0", labels={"app": "x"}, node_name="a1"), pod("x-1", labels={"app": "x"}, node_name="b1"),
                    pod("x-2", labels={"app": "x"}, topologySpreadConstraints=[soft])])
    assert isinstance(r, Binding)


def test_spread_counts_only_the_pods_own_namespace():
    spread = [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "x"}}}]
    other = pod("x-9", labels={"app": "x"}, node_name="n1")
    other["metadata"]["namespace"] = "elsewhere"
    r = one([node("n1", cpu="8"), node("n2")], [other, pod("x-0", cpu="2", labels={"app": "x"},
                                                       topologySpreadConstraints=spread, node_name="n2"),
                                                pod("x-1", labels={"app": "x"}, topologySpreadConstraints=spread)])
    assert isinstance(r, Binding) and r.node == "n1"


def test_node_affinity_operators_and_match_fields():
    def required(*terms):
        return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}
    nodes = [node("n1", labels={"gen": "3"}), node("n2", labels={"gen": "5"})]
    gt = required({"matchExpressions": [{"key": "gen", "operator": "Gt", "values": ["4"]}]})
    assert one(nodes, [pod("x", affinity=gt)]).node == "n2"
    named = required({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]})
    assert one(nodes, [pod("x", affinity=named)]).node == "n1"
    bad = required({"matchExpressions": [{"key": "gen", "operator": "Lt", "values": ["not-a-number"]}]})
    r = one(nodes, [pod("x", affinity=bad)])
    assert isinstance(r, Failure) and "2 node(s) didn't match Pod's node affinity/selector." in r.message


def test_the_sim_filters_with_the_packers_rules(monkeypatch):
    """One scheduler in fact: the sim's node-by-node path asks eafix_capacity.scheduling,
    so a change to the rules there is a change to the sim."""
    from eafix_capacity import scheduling

    monkeypatch.setattr(scheduling, "placement_rules", lambda pod, node, state: ["refused by the rules"])
    spread = [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "x"}}}]
    r = one([node("n1")], [pod("x-0", labels={"app": "x"}, topologySpreadConstraints=spread)])
    assert isinstance(r, Failure) and r.message.startswith("0/1 nodes are available: 1 refused by the rules.")


def test_a_terminating_pod_holds_its_nodes_room_until_it_is_gone():
    leaving = pod("old-1", cpu="3", node_name="n1")
    leaving["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:30Z"
    r = one([node("n1")], [leaving, pod("new-1", cpu="2")])
    assert isinstance(r, Failure) and "1 Insufficient cpu" in r.message
    assert isinstance(one([node("n1")], [pod("new-1", cpu="2")]), Binding)  # once it is gone
    finished = pod("done-1", cpu="3", node_name="n1")
    finished["status"]["phase"] = "Succeeded"
    assert isinstance(one([node("n1")], [finished, pod("new-1", cpu="2")]), Binding)  # a finished pod holds nothing
