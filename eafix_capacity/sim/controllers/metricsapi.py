"""The metrics.k8s.io API the sim serves in place of metrics-server.

PodMetrics and NodeMetrics computed from the usage model at the sim clock's time
(:mod:`eafix_capacity.sim.metrics`), what ``kubectl top`` and the HPA read.
"""
from __future__ import annotations


from eafix_capacity.sim import metrics as M
from eafix_capacity.sim import resources as R
from eafix_capacity.sim.apierror import ApiError
from eafix_capacity.sim.controllers.context import Context


class MetricsApi:
    """Answers metrics.k8s.io reads."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def metrics_list(self, kind: str, namespace: str | None, name: str | None, label_selector: str | None) -> dict:
        """metrics.k8s.io/v1beta1 bodies: ``kind`` is ``pods``/``PodMetrics`` or ``nodes``/``NodeMetrics``."""
        k = kind.lower()
        t = self.ctx.clock.now()
        model = self.ctx.model
        if k in ("pods", "podmetrics", "podmetricslist"):
            pods, _, _ = self.ctx.store.list_objects(R.POD, namespace or None, label_selector=label_selector)
            if name is not None:
                for p in pods:
                    # metrics-server's podMetrics.Get: a pod it has no metrics for is NotFound
                    if p["metadata"]["name"] == name and M.pod_is_measured(p, t):
                        return M.pod_metrics(p, model, t)
                raise ApiError(404, "NotFound", f'podmetrics.metrics.k8s.io "{namespace}/{name}" not found',
                               details={"name": f"{namespace}/{name}", "group": "metrics.k8s.io", "kind": "pods"})
            return M.pod_metrics_list(pods, model, t)
        if k in ("nodes", "nodemetrics", "nodemetricslist"):
            nodes, _, _ = self.ctx.store.list_objects(R.NODE, label_selector=label_selector)
            if name is not None:
                # metrics-server's nodeMetrics.Get: a node it has no metrics for is NotFound
                nodes = [n for n in nodes if n["metadata"]["name"] == name and M.node_is_measured(n, t)]
                if not nodes:
                    raise ApiError(404, "NotFound", f'nodemetrics.metrics.k8s.io "{name}" not found',
                                   details={"name": name, "group": "metrics.k8s.io", "kind": "nodes"})
            pods, _, _ = self.ctx.store.list_objects(R.POD)
            body = M.node_metrics_list(nodes, pods, model, t)
            if name is not None:  # one object: its kind and apiVersion back in front
                return {"kind": "NodeMetrics", "apiVersion": M.API_VERSION, **body["items"][0]}
            return body
        raise ApiError(404, "NotFound", f"the server could not find the requested resource ({kind})")
