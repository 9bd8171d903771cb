"""Random and mutated requests must never crash or wedge the sim API server.

Seeded random (a fixed number of requests): mutated valid bodies, random bytes, random
paths, methods and content types. Every answer must be an HTTP response with a JSON
``Status`` on errors and no 5xx; afterwards /healthz and a normal create/get still work.
"""
from __future__ import annotations

import http.client
import json
import random
from urllib.parse import quote, urlsplit

import pytest

from eafix_capacity.sim.cluster import SimCluster

pytestmark = pytest.mark.sim

SEED_BODIES = [
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "labels": {"a": "b"}}, "data": {"k": "v"}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
     "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
              "template": {"metadata": {"labels": {"a": "b"}},
                           "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80}]}]}}}},
]
PATHS = ["/api/v1/namespaces/default/configmaps", "/apis/apps/v1/namespaces/default/deployments",
         "/api/v1/namespaces/default/configmaps/cm", "/apis/apps/v1/namespaces/default/deployments/d",
         "/apis/apps/v1/namespaces/default/deployments/d/scale", "/api/v1/namespaces/default/pods/p/eviction",
         "/api/v1/nodes", "/apis", "/api/v1", "/openapi/v3", "/apis/metrics.k8s.io/v1beta1/nodes"]
TYPES = ["application/json", "application/yaml", "application/merge-patch+json", "application/json-patch+json",
         "application/strategic-merge-patch+json", "application/apply-patch+yaml",
         "application/vnd.kubernetes.protobuf", "text/plain", ""]
QUERIES = ["", "?dryRun=All", "?fieldManager=fz", "?fieldManager=fz&force=true", "?watch=true&timeoutSeconds=0",
           "?labelSelector=a%3Db", "?limit=1", "?fieldValidation=Warn", "?continue=%%%", "?resourceVersion=abc"]
VALUES: list[object] = [None, 0, -1, 2**40, "", "x" * 300, [], {}, True, 1.5, "Bad_Name", {"$patch": "delete"}]


def mutate(rng: random.Random, value: object, depth: int = 0) -> object:
    if isinstance(value, dict) and value and depth < 6:
        out = dict(value)
        key = rng.choice(list(out))
        roll = rng.random()
        if roll < 0.3:
            out[key] = rng.choice(VALUES)
        elif roll < 0.45:
            del out[key]
        elif roll < 0.6:
            out[rng.choice(["foo", "$patch", "spec", "metadata", "x" * 10])] = rng.choice(VALUES)
        else:
            out[key] = mutate(rng, out[key], depth + 1)
        return out
    if isinstance(value, list) and value and depth < 6:
        out_list = list(value)
        i = rng.randrange(len(out_list))
        out_list[i] = mutate(rng, out_list[i], depth + 1) if rng.random() < 0.7 else rng.choice(VALUES)
        return out_list
    return rng.choice(VALUES)


def body_for(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.6:
        return json.dumps(mutate(rng, rng.choice(SEED_BODIES))).encode()
    if roll < 0.75:
        text = json.dumps(rng.choice(SEED_BODIES))
        cut = rng.randrange(len(text))
        return text[:cut].encode()
    if roll < 0.85:
        return json.dumps([{"op": rng.choice(["add", "remove", "replace", "move", "test", "x"]),
                            "path": rng.choice(["/data/k", "/spec", "", "/a/b/c", "nope"]),
                            "value": rng.choice(VALUES)}]).encode()
    if roll < 0.95:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    return ("[" * 3000 + "]" * 3000).encode()


def random_path(rng: random.Random) -> str:
    if rng.random() < 0.8:
        return rng.choice(PATHS) + rng.choice(QUERIES)
    parts = ["".join(rng.choice("abz/._-%~") for _ in range(rng.randrange(1, 12))) for _ in range(rng.randrange(1, 7))]
    return "/" + "/".join(quote(p, safe="/%") for p in parts)


def request(sim: SimCluster, method: str, path: str, body: bytes | None, ctype: str) -> tuple[int, bytes]:
    url = urlsplit(sim.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    headers = {"Content-Type": ctype} if ctype else {}
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


COLLECTIONS = ["/api/v1/namespaces/default/configmaps", "/apis/apps/v1/namespaces/default/deployments"]
REQUESTS = 1000


def targeted(rng: random.Random) -> tuple[str, str, bytes, str]:
    """A request aimed at an existing object with a mutated but plausible body."""
    which = rng.randrange(2)
    seed = SEED_BODIES[which]
    item = f"{COLLECTIONS[which]}/{seed['metadata']['name']}"
    body = json.dumps(mutate(rng, seed)).encode()
    roll = rng.random()
    if roll < 0.25:
        return "POST", COLLECTIONS[which] + rng.choice(QUERIES[:4]), body, "application/json"
    if roll < 0.45:
        return "PUT", item, body, rng.choice(["application/json", "application/yaml"])
    if roll < 0.8:
        ctype = rng.choice(TYPES[2:6])
        query = "?fieldManager=fz" + ("&force=true" if rng.random() < 0.5 else "")
        return "PATCH", item + query, body if "json-patch" not in ctype else body_for(rng), ctype
    return "PATCH", item, body_for(rng), "application/json-patch+json"


def test_fuzzed_requests_keep_the_server_answering(sim_cluster: SimCluster) -> None:
    rng = random.Random(20260114)
    for seed, path in zip(SEED_BODIES, COLLECTIONS):
        assert request(sim_cluster, "POST", path, json.dumps(seed).encode(), "application/json")[0] == 201
    statuses: set[int] = set()
    # A fixed number of requests, not a time budget: the same seeded sequence runs on a loaded CI machine.
    for sent in range(1, REQUESTS + 1):
        if rng.random() < 0.5:
            method, path, body, ctype = targeted(rng)
        else:
            method = rng.choice(["GET", "POST", "PUT", "PATCH", "DELETE"])
            body = body_for(rng) if method in ("POST", "PUT", "PATCH") or rng.random() < 0.1 else None
            path, ctype = random_path(rng), rng.choice(TYPES)
        status, data = request(sim_cluster, method, path, body, ctype)
        statuses.add(status)
        assert status < 500, (status, data[:300])
        if status >= 400:
            parsed = json.loads(data)
            assert parsed["kind"] == "Status" and parsed["code"] == status
    assert sent == REQUESTS
    assert {200, 201, 400, 404, 415, 422} <= statuses, statuses
    assert request(sim_cluster, "GET", "/healthz", None, "") == (200, b"ok")
    good = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after-fuzz"},
                       "data": {"ok": "yes"}}).encode()
    status, _ = request(sim_cluster, "POST", "/api/v1/namespaces/default/configmaps", good, "application/json")
    assert status == 201
    status, data = request(sim_cluster, "GET", "/api/v1/namespaces/default/configmaps/after-fuzz", None, "")
    assert status == 200 and json.loads(data)["data"] == {"ok": "yes"}
