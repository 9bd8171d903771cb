"""Plain JSON GETs through the official client's ``ApiClient``, without its typed API classes.

``CoreV1Api``, ``AppsV1Api`` and the other generated classes build their pydantic models on
first use: 1.1-1.5 s in every process on this machine, and up to 4.5 s in a busy notebook
kernel, which is longer than verify takes to read a 1,000-node cluster. The reads here send
the same request through the same ``ApiClient`` (its authentication, TLS and timeouts, the
server's ``Status`` as ``ApiException``) and hand back the JSON as the server wrote it: the
models would also rename every field to snake_case and drop what they do not know.
"""
from __future__ import annotations

import json
from typing import Any


def get_json(api_client: Any, path: str, *, timeout: float) -> Any:
    """GET ``path`` and return its JSON; ``timeout`` seconds to connect and again to answer. A
    refusal raises the client's ``ApiException`` with the server's ``Status``; an answer that is
    not JSON raises ``ValueError``; the transport's errors propagate."""
    request = api_client.param_serialize("GET", path, header_params={"Accept": "application/json"},
                                         auth_settings=["BearerToken"])
    response = api_client.call_api(*request, _request_timeout=(timeout, timeout))
    response.read()
    if not 200 <= response.status <= 299:
        api_client.response_deserialize(response, {})  # raises ApiException with the server's Status body
    return json.loads(response.data)


def list_items(api_client: Any, path: str, kind: str, *, timeout: float) -> list[dict[str, Any]]:
    """The items of the list at ``path``, each given its ``kind``: a real server's list of a
    built-in kind leaves ``kind`` and ``apiVersion`` out of its items."""
    items = list((get_json(api_client, path, timeout=timeout) or {}).get("items") or [])
    for item in items:
        item.setdefault("kind", kind)
    return items


def send_json(api_client: Any, method: str, path: str, body: Any, *, timeout: float,
              content_type: str = "application/json") -> Any:
    """``method`` (POST, PUT, PATCH, DELETE) ``body`` as JSON to ``path`` and return the answer's
    JSON, as :func:`get_json` does (a refusal raises ``ApiException`` with the server's Status).
    For a PATCH, ``content_type`` names the patch type (``application/merge-patch+json``,
    ``application/strategic-merge-patch+json``)."""
    request = api_client.param_serialize(method, path, header_params={"Accept": "application/json",
                                                                      "Content-Type": content_type},
                                         body=body, auth_settings=["BearerToken"])
    response = api_client.call_api(*request, _request_timeout=(timeout, timeout))
    response.read()
    if not 200 <= response.status <= 299:
        api_client.response_deserialize(response, {})
    return json.loads(response.data) if response.data else None


def post_json(api_client: Any, path: str, body: Any, *, timeout: float) -> Any:
    """POST ``body`` to ``path`` (a create, or a subresource such as ``pods/NAME/eviction``)."""
    return send_json(api_client, "POST", path, body, timeout=timeout)


def patch_json(api_client: Any, path: str, patch: Any, *, timeout: float,
               content_type: str = "application/strategic-merge-patch+json") -> Any:
    """PATCH ``path`` with ``patch`` (by default a strategic merge patch, as ``kubectl cordon``)."""
    return send_json(api_client, "PATCH", path, patch, timeout=timeout, content_type=content_type)


def delete_json(api_client: Any, path: str, *, timeout: float, body: Any = None) -> Any:
    """DELETE ``path`` (``body``: DeleteOptions, or None)."""
    return send_json(api_client, "DELETE", path, body, timeout=timeout)
