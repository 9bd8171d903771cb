"""The sim cluster: a Kubernetes API served on 127.0.0.1 by the kit itself.

``SimCluster`` (in ``cluster``) starts the store, the HTTP API server and the controllers;
the real ``kubectl`` and the official ``kubernetes`` client drive it like a real cluster.
Imported lazily so the controllers can import ``store`` without pulling in the server.
"""
from __future__ import annotations

__all__ = ["SimCluster"]


def __getattr__(name: str) -> object:
    if name == "SimCluster":
        from eafix_capacity.sim.cluster import SimCluster

        return SimCluster
    raise AttributeError(name)
