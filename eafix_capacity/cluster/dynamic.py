"""The official client's ``DynamicClient`` with discovery kept in memory, for one run only.

By default the client caches discovery in ``/tmp/osrcp-<md5 of the server URL>.json`` and
reuses it from any later process that talks to the same URL: after a CRD was removed, or when
a different cluster answers at that URL (a sim on a reused port, a tunnel to another cluster),
a kind the old cache lists is sent and refused with a 404 instead of being reported as a
missing CRD. :func:`dynamic_client` points the cache at a path that can neither exist nor be
written (under ``/dev/null``), so the client discovers afresh and keeps what it found in
memory: the discoverer skips a missing file and ignores a failed write.
"""
from __future__ import annotations

import os
from typing import Any

NO_CACHE_FILE = os.path.join(os.devnull, "eafix-capacity-discovery.json")


def dynamic_client(api_client: Any) -> Any:
    """A ``DynamicClient`` for ``api_client`` that reads no discovery cache and writes none."""
    from kubernetes.dynamic import DynamicClient

    return DynamicClient(api_client, cache_file=NO_CACHE_FILE)
