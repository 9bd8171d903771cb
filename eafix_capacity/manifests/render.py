"""The catalogue and profile as Kubernetes objects (pure: plain dicts, no I/O).

Every figure the plan relies on (replicas, requests, limits, HPA bounds, storage, the
topology spread the packing assumed) is written exactly as the catalogue holds it, and the
catalogue fields Kubernetes has no place for (tier, runtime, description, the source of
each figure) ride along as ``eafix.io/*`` labels and annotations, so that importing the
rendering gives back the same catalogue.

Istio sidecars are not rendered: the mesh injects them at admission. With the mesh on,
the namespace is labelled for injection and the ``istio/`` objects are added.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..catalog import Catalog, Service
from ..errors import InputError
from ..mesh import SIDECAR, Mesh, parse_mesh
from ..profiles import Profile
from ..quantity import from_bytes, from_milli
from ..scenarios import MAX_SURGE, is_multi_replica, peak_pods, peak_totals, uses_recreate
from ..scheduling import Toleration
from . import runtime
from .secrets import SECRET_NAME, external_secret_objects, secret_template

DEFAULT_NAMESPACE = "eafix-trading"
DEFAULT_IMAGE_TAG = "v0.1.0"
KUBERNETES_VERSION = "1.32"
PART_OF = "eafix-trading"
MANAGED_BY = "eafix-capacity"
CONFIG_MAP = "eafix-config"

# Label and annotation keys that carry what import needs to rebuild the catalogue.
L_NAME = "app.kubernetes.io/name"
L_PART_OF = "app.kubernetes.io/part-of"
L_COMPONENT = "app.kubernetes.io/component"
L_MANAGED_BY = "app.kubernetes.io/managed-by"
L_TIER = "eafix.io/tier"
L_RUNTIME = "eafix.io/runtime"
L_INJECT = "sidecar.istio.io/inject"
A_DESCRIPTION = "eafix.io/description"
A_IMAGE = "eafix.io/image"
A_ORDER = "eafix.io/catalog-index"
A_SOURCE = "eafix.io/source-"
A_REPLICAS = "eafix.io/replicas"

HTTP_RUNTIMES = ("generic", "jvm", "prometheus", "grafana")
APP_TIERS = ("trading", "supporting")
# cert-manager's HTTP-01 solver pods: their label and the port they answer on
ACME_SOLVER_LABEL = "acme.cert-manager.io/http01-solver"
ACME_SOLVER_PORT = 8089
# services that reach outside the cluster (price feed, calendar feed, broker)
EXTERNAL_EGRESS = ("data-ingestor", "calendar-ingestor", "execution-engine")

# The block-storage CSI driver of each managed Kubernetes the StorageClass can be rendered for
# (GKE's Compute Engine PD driver, the EKS EBS add-on, AKS's Azure Disk driver).
STORAGE_PROVIDERS = ("gke", "eks", "aks")
CSI_PROVISIONER = {"gke": "pd.csi.storage.gke.io", "eks": "ebs.csi.aws.com", "aks": "disk.csi.azure.com"}

# Non-root user ids: the EAFIX images run as 10001; the others are their images' own users.
RUN_AS = {"generic": 10001, "jvm": 10001, "redis": 999, "postgres": 999,
          "prometheus": 65534, "grafana": 472}

LIVENESS = {"initialDelaySeconds": 30, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3}
READINESS = {"initialDelaySeconds": 5, "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 3}


@dataclass(frozen=True)
class RenderOptions:
    """Choices the catalogue does not make. Defaults match the seed README. ``mesh`` is
    parsed on construction (``"Istio"`` becomes ``"istio"``)."""

    namespace: str = DEFAULT_NAMESPACE
    mesh: Mesh = "none"
    image_registry: str | None = None   # replaces the registry of images without a tag
    image_tag: str = DEFAULT_IMAGE_TAG  # tag for catalogue images that carry none
    ingress_host: str = "trading.eafix.example.com"
    ingress_class: str = "nginx"
    ingress_service: str = "gui-gateway"
    ingress_controller_namespace: str = "ingress-nginx"
    tls_secret: str = "trading-eafix-tls"
    cluster_issuer: str = "letsencrypt-prod"
    provider: str = "gke"               # whose CSI driver and disk types the StorageClass names
    storage_provisioner: str | None = None  # default: the provider's CSI driver
    zone_spread: bool = False           # a zone spread next to the hostname one (multi-replica services)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mesh", parse_mesh(self.mesh))
        if isinstance(self.provider, str):
            object.__setattr__(self, "provider", self.provider.strip().lower())

    @property
    def provisioner(self) -> str:
        return self.storage_provisioner or CSI_PROVISIONER.get(self.provider, "")


_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def check_options(options: RenderOptions) -> RenderOptions:
    """Validate the options (bad values raise InputError)."""
    if not re.match(_DNS_LABEL, options.namespace) or len(options.namespace) > 63:
        raise InputError("invalid namespace", field="namespace", value=options.namespace,
                         valid="a DNS label: lower-case letters, digits and '-', at most 63 characters")
    if options.provider not in STORAGE_PROVIDERS:
        raise InputError("unknown provider", field="provider", value=options.provider,
                         valid=f"one of {', '.join(STORAGE_PROVIDERS)}: the cluster whose CSI driver the "
                               "StorageClass names")
    tag = options.image_tag
    if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", tag or ""):
        raise InputError("invalid image tag", field="image_tag", value=tag,
                         valid="a Docker tag such as v0.1.0 (letters, digits, '_', '.', '-')")
    if tag == "latest":
        raise InputError("mutable image tag", field="image_tag", value=tag,
                         valid="a fixed release tag such as v0.1.0, never latest")
    if not isinstance(options.zone_spread, bool):
        raise InputError("not a boolean", field="zone_spread", value=options.zone_spread,
                         valid="true or false: whether multi-replica services also spread over "
                               "topology.kubernetes.io/zone")
    reg = options.image_registry
    if reg is not None and not re.match(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9._-]+)*$", reg):
        raise InputError("invalid image registry", field="image_registry", value=reg,
                         valid="a registry host with optional port and path, such as ghcr.io")
    return options


# -- small helpers ---------------------------------------------------------------------

def _cpu(m: int) -> str:
    return str(from_milli(m))


def _mem(n: int) -> str:
    return str(from_bytes(n))


def is_http(svc: Service) -> bool:
    return svc.runtime in HTTP_RUNTIMES


def image_for(svc: Service, options: RenderOptions) -> str:
    """``registry/repo:tag``: catalogue images without a tag get the release tag (and the
    registry override); images the catalogue pins keep their tag."""
    image = svc.image or f"{svc.name}"
    last = image.rsplit("/", 1)[-1]
    if "@" in image or ":" in last:
        return image
    if options.image_registry:
        parts = image.split("/", 1)
        repo = parts[1] if len(parts) == 2 and ("." in parts[0] or ":" in parts[0]) else image
        image = f"{options.image_registry}/{repo}"
    return f"{image}:{options.image_tag}"


def _base_labels(name: str, component: str) -> dict[str, str]:
    return {L_NAME: name, L_PART_OF: PART_OF, L_COMPONENT: component, L_MANAGED_BY: MANAGED_BY}


def selector_labels(name: str) -> dict[str, str]:
    return {L_NAME: name, L_PART_OF: PART_OF}


def _svc_labels(svc: Service) -> dict[str, str]:
    return {**_base_labels(svc.name, svc.tier), L_TIER: svc.tier, L_RUNTIME: svc.runtime}


def _meta(name: str, namespace: str | None, labels: dict[str, str],
          annotations: dict[str, str] | None = None) -> dict:
    meta: dict = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def _ns_labels(options: RenderOptions) -> dict[str, str]:
    return _base_labels(options.namespace, "namespace")


# -- namespace, quota, limits, service accounts ----------------------------------------

def _namespace(options: RenderOptions) -> dict:
    labels = {
        **_ns_labels(options),
        "kubernetes.io/metadata.name": options.namespace,
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": f"v{KUBERNETES_VERSION}",
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/warn": "restricted",
    }
    if options.mesh == "istio":
        labels["istio-injection"] = "enabled"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(options.namespace, None, labels)}


def pvc_count(catalog: Catalog) -> int:
    return sum(len(s.volumes) * (s.max_replicas if s.kind == "StatefulSet" else 1)
               for s in catalog.services)


def _resource_quota(catalog: Catalog, profile: Profile, options: RenderOptions) -> dict:
    peak = peak_totals(catalog, mesh=options.mesh)
    hard = {
        "requests.cpu": _cpu(peak.cpu_request_m),
        "requests.memory": _mem(peak.memory_request_bytes),
        "limits.cpu": _cpu(peak.cpu_limit_m),
        "limits.memory": _mem(peak.memory_limit_bytes),
        "pods": str(peak_pods(catalog, mesh=options.mesh)),
        "requests.storage": _mem(profile.storage_bytes),
        "persistentvolumeclaims": str(pvc_count(catalog)),
    }
    return {
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": _meta(f"{options.namespace}-quota", options.namespace, _ns_labels(options), {
            "eafix.io/sizing": "the plan's peak: every HPA at its maximum plus the largest rollout "
                               f"surge{', Istio sidecars included' if options.mesh == 'istio' else ''}; "
                               f"storage is the {profile.name} profile's budget",
        }),
        "spec": {"hard": hard},
    }


def _limit_range(catalog: Catalog, options: RenderOptions) -> dict:
    containers = [c.resources for s in catalog.services for c in s.containers]
    if options.mesh == "istio":
        containers.append(SIDECAR)
    smallest = min(containers, key=lambda r: (r.cpu_request_m, r.memory_request_bytes))
    spec_limits: list[dict] = [{
        "type": "Container",
        "default": {"cpu": _cpu(smallest.cpu_limit_m), "memory": _mem(smallest.memory_limit_bytes)},
        "defaultRequest": {"cpu": _cpu(smallest.cpu_request_m), "memory": _mem(smallest.memory_request_bytes)},
        "max": {"cpu": _cpu(max(r.cpu_limit_m for r in containers)),
                "memory": _mem(max(r.memory_limit_bytes for r in containers))},
    }]
    sizes = [v.size_bytes for s in catalog.services for v in s.volumes]
    if sizes:
        spec_limits.append({"type": "PersistentVolumeClaim", "max": {"storage": _mem(max(sizes))}})
    return {
        "apiVersion": "v1", "kind": "LimitRange",
        "metadata": _meta(f"{options.namespace}-limits", options.namespace, _ns_labels(options), {
            "eafix.io/sizing": "defaults: the catalogue's smallest container; max: its largest limit",
        }),
        "spec": {"limits": spec_limits},
    }


def _service_account(svc: Service, options: RenderOptions) -> dict:
    return {
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": _meta(svc.name, options.namespace, _svc_labels(svc)),
        "automountServiceAccountToken": svc.runtime == "prometheus",
    }


# -- storage -----------------------------------------------------------------------------

def storage_class_name(profile: Profile) -> str:
    return "eafix-ssd" if profile.storage_media == "ssd" else "eafix-standard"


def _storage_class(profile: Profile, options: RenderOptions) -> dict:
    sc: dict = {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": _meta(storage_class_name(profile), None,
                          _base_labels(storage_class_name(profile), "storage")),
        "provisioner": options.provisioner,
    }
    parameters = _storage_parameters(options.provisioner, ssd=profile.storage_media == "ssd")
    if parameters:
        sc["parameters"] = parameters
    sc.update({"reclaimPolicy": "Retain", "allowVolumeExpansion": True,
               "volumeBindingMode": "WaitForFirstConsumer"})
    return sc


def _storage_parameters(provisioner: str, *, ssd: bool) -> dict:
    """The disk type each CSI driver's StorageClass ``parameters`` name: GKE pd-ssd or
    pd-balanced (both SSD-backed); EBS gp3, the general-purpose SSD (EBS has no cheaper SSD
    for either media, and its HDDs st1/sc1 start at 125 GiB); Azure Premium_LRS or
    StandardSSD_LRS. Another provisioner's parameters are its own: none are rendered."""
    if provisioner == CSI_PROVISIONER["gke"]:
        return {"type": "pd-ssd" if ssd else "pd-balanced"}
    if provisioner == CSI_PROVISIONER["eks"]:
        return {"type": "gp3", "csi.storage.k8s.io/fstype": "ext4", "encrypted": "true"}
    if provisioner == CSI_PROVISIONER["aks"]:
        return {"skuName": "Premium_LRS" if ssd else "StandardSSD_LRS"}
    return {}


def claim_name(svc: Service, volume_name: str) -> str:
    return f"{svc.name}-{volume_name}"


def _pvc_spec(size: int, access_mode: str, profile: Profile) -> dict:
    return {"accessModes": [access_mode], "storageClassName": storage_class_name(profile),
            "resources": {"requests": {"storage": _mem(size)}}}


def _pvcs(svc: Service, profile: Profile, options: RenderOptions) -> list[dict]:
    if svc.kind == "StatefulSet":
        return []
    return [{
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": _meta(claim_name(svc, v.name), options.namespace, _svc_labels(svc)),
        "spec": _pvc_spec(v.size_bytes, v.access_mode, profile),
    } for v in svc.volumes]


# -- configuration -----------------------------------------------------------------------

def _app_config(catalog: Catalog, options: RenderOptions) -> dict:
    data = {"SERVICE_LOG_LEVEL": "INFO"}
    for s in catalog.services:
        key = "SERVICE_" + s.name.upper().replace("-", "_") + "_URL"
        if s.runtime == "redis":
            data[key] = f"redis://{s.name}:{s.port}"
        elif s.runtime == "postgres":
            data[key] = f"postgresql://{s.name}:{s.port}/eafix_trading"
        else:
            data[key] = f"http://{s.name}:{s.port}"
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _meta(CONFIG_MAP, options.namespace, _base_labels(CONFIG_MAP, "config")),
            "data": dict(sorted(data.items()))}


def config_map_name(svc: Service) -> str:
    return f"{svc.name}-config"


CONFIG_KEYS = {"redis": "redis.conf", "postgres": "postgresql.conf",
               "prometheus": "prometheus.yml", "grafana": "datasources.yaml"}


def _prometheus_config(options: RenderOptions) -> str:
    return (
        "global:\n"
        "  scrape_interval: 15s\n"
        "  evaluation_interval: 15s\n"
        "scrape_configs:\n"
        "  - job_name: eafix-pods\n"
        "    kubernetes_sd_configs:\n"
        "      - role: pod\n"
        "        namespaces:\n"
        f"          names: [{options.namespace}]\n"
        "    relabel_configs:\n"
        "      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]\n"
        "        action: keep\n"
        "        regex: \"true\"\n"
        "      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path]\n"
        "        action: replace\n"
        "        target_label: __metrics_path__\n"
        "        regex: (.+)\n"
        "      - source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]\n"
        "        action: replace\n"
        "        regex: ([^:]+)(?::\\d+)?;(\\d+)\n"
        "        replacement: $1:$2\n"
        "        target_label: __address__\n"
        "      - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_name]\n"
        "        target_label: service\n"
    )


def _grafana_datasources(catalog: Catalog) -> str:
    prom = next((s for s in catalog.services if s.runtime == "prometheus"), None)
    url = f"http://{prom.name}:{prom.port}" if prom else "http://prometheus:9090"
    return (
        "apiVersion: 1\n"
        "datasources:\n"
        "  - name: Prometheus\n"
        "    type: prometheus\n"
        "    access: proxy\n"
        f"    url: {url}\n"
        "    isDefault: true\n"
    )


def _runtime_config(svc: Service, catalog: Catalog, options: RenderOptions) -> dict | None:
    limit = svc.containers[0].resources.memory_limit_bytes
    if svc.runtime == "redis":
        text = runtime.redis_conf(limit)
    elif svc.runtime == "postgres":
        text = runtime.postgresql_conf(limit)
    elif svc.runtime == "prometheus":
        text = _prometheus_config(options)
    elif svc.runtime == "grafana":
        text = _grafana_datasources(catalog)
    else:
        return None
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _meta(config_map_name(svc), options.namespace, _svc_labels(svc)),
            "data": {CONFIG_KEYS[svc.runtime]: text}}


# -- workloads ---------------------------------------------------------------------------

def _secret_env(*pairs: tuple[str, str]) -> list[dict]:
    return [{"name": env, "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": key}}}
            for env, key in pairs]


def _container_security() -> dict:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}


def _resources(r) -> dict:
    return {"requests": {"cpu": _cpu(r.cpu_request_m), "memory": _mem(r.memory_request_bytes)},
            "limits": {"cpu": _cpu(r.cpu_limit_m), "memory": _mem(r.memory_limit_bytes)}}


def _probes(svc: Service, port_name: str) -> tuple[dict, dict]:
    if svc.runtime == "redis":
        check = 'redis-cli -a "$REDIS_PASSWORD" --no-auth-warning ping | grep -q PONG'
        return ({"tcpSocket": {"port": port_name}, **LIVENESS},
                {"exec": {"command": ["sh", "-c", check]}, **READINESS})
    if svc.runtime == "postgres":
        check = 'pg_isready -h 127.0.0.1 -U "$POSTGRES_USER" -d eafix_trading'
        return ({"tcpSocket": {"port": port_name}, **LIVENESS},
                {"exec": {"command": ["sh", "-c", check]}, **READINESS})
    live, ready = {"generic": ("/healthz", "/healthz"), "jvm": ("/healthz", "/healthz"),
                   "prometheus": ("/-/healthy", "/-/ready"),
                   "grafana": ("/api/health", "/api/health")}[svc.runtime]
    return ({"httpGet": {"path": live, "port": port_name}, **LIVENESS},
            {"httpGet": {"path": ready, "port": port_name}, **READINESS})


def _port_name(svc: Service) -> str:
    return svc.runtime if svc.runtime in ("redis", "postgres") else "http"


def _main_container(svc: Service, options: RenderOptions) -> dict:
    """The service's first container: ports, env, probes, runtime settings, mounts."""
    port_name = _port_name(svc)
    c0 = svc.containers[0]
    container: dict = {"name": c0.name, "image": image_for(svc, options), "imagePullPolicy": "IfNotPresent"}
    env: list[dict] = []
    mounts: list[dict] = [{"name": "tmp", "mountPath": "/tmp"}]
    limit = c0.resources.memory_limit_bytes
    if svc.runtime == "redis":
        container["command"] = ["redis-server", "/etc/redis/redis.conf",
                                "--requirepass", "$(REDIS_PASSWORD)"]
        env = _secret_env(("REDIS_PASSWORD", "REDIS_PASSWORD"))
        mounts.append({"name": "config", "mountPath": "/etc/redis", "readOnly": True})
    elif svc.runtime == "postgres":
        container["args"] = ["-c", "config_file=/etc/postgresql/postgresql.conf"]
        env = _secret_env(("POSTGRES_USER", "POSTGRES_USER"), ("POSTGRES_PASSWORD", "POSTGRES_PASSWORD"))
        env += [{"name": "POSTGRES_DB", "value": "eafix_trading"},
                {"name": "POSTGRES_INITDB_ARGS", "value": "--data-checksums"},
                {"name": "PGDATA", "value": svc.volumes[0].mount_path.rstrip("/") + "/pgdata"
                 if svc.volumes else "/var/lib/postgresql/data/pgdata"}]
        mounts += [{"name": "config", "mountPath": "/etc/postgresql", "readOnly": True},
                   {"name": "run", "mountPath": "/var/run/postgresql"}]
    elif svc.runtime == "prometheus":
        container["args"] = ["--config.file=/etc/prometheus/prometheus.yml",
                             "--storage.tsdb.path=" + (svc.volumes[0].mount_path if svc.volumes else "/prometheus"),
                             "--storage.tsdb.retention.time=15d"]
        mounts.append({"name": "config", "mountPath": "/etc/prometheus", "readOnly": True})
    elif svc.runtime == "grafana":
        env = _secret_env(("GF_SECURITY_ADMIN_PASSWORD", "GRAFANA_ADMIN_PASSWORD"))
        data = svc.volumes[0].mount_path if svc.volumes else "/var/lib/grafana"
        env += [{"name": "GF_PATHS_DATA", "value": data},
                {"name": "GF_PATHS_LOGS", "value": data.rstrip("/") + "/log"}]
        mounts.append({"name": "config", "mountPath": "/etc/grafana/provisioning/datasources",
                       "readOnly": True})
    else:
        container["envFrom"] = [{"configMapRef": {"name": CONFIG_MAP}}]
        env = [{"name": "SERVICE_NAME", "value": svc.name},
               {"name": "SERVICE_PORT", "value": str(svc.port)}]
        env += _secret_env(("REDIS_PASSWORD", "REDIS_PASSWORD"),
                           ("POSTGRES_USER", "POSTGRES_USER"), ("POSTGRES_PASSWORD", "POSTGRES_PASSWORD"))
        if svc.name == "execution-engine":
            env += _secret_env(("BROKER_API_KEY", "BROKER_API_KEY"))
        if svc.runtime == "jvm":
            env.append({"name": "JAVA_OPTS", "value": runtime.java_opts(limit)})
    container["ports"] = [{"name": port_name, "containerPort": svc.port, "protocol": "TCP"}]
    if env:
        container["env"] = env
    container["resources"] = _resources(c0.resources)
    live, ready = _probes(svc, port_name)
    container["livenessProbe"] = live
    container["readinessProbe"] = ready
    container["securityContext"] = _container_security()
    for v in svc.volumes:
        mounts.append({"name": v.name, "mountPath": v.mount_path})
    container["volumeMounts"] = mounts
    return container


def _extra_container(svc: Service, index: int, options: RenderOptions) -> dict:
    c = svc.containers[index]
    return {"name": c.name, "image": image_for(svc, options), "imagePullPolicy": "IfNotPresent",
            "resources": _resources(c.resources), "securityContext": _container_security(),
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}


def spread_constraint(name: str) -> dict:
    """One replica per node first: the spread the plan's packing assumes."""
    return {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "DoNotSchedule", "nodeTaintsPolicy": "Honor",
            "labelSelector": {"matchLabels": selector_labels(name)}}


ZONE_KEY = "topology.kubernetes.io/zone"


def zone_spread_constraint(name: str) -> dict:
    """At most one replica more in any zone than in another, so a lost zone takes at most
    one of a two-replica service. ``nodeTaintsPolicy: Honor``: the nodes of a lost zone
    carry the NoSchedule ``node.kubernetes.io/unreachable`` taint (the pods tolerate only
    its NoExecute twin, for 300 s), and with Honor kube-scheduler's podtopologyspread
    (common.go matchNodeInclusionPolicies, taints filtered by DoNotScheduleTaintsFilterFunc)
    leaves such nodes out of the domains; with the default Ignore the lost zone would count
    as a domain of zero and hold the replacements back."""
    return {"maxSkew": 1, "topologyKey": ZONE_KEY,
            "whenUnsatisfiable": "DoNotSchedule", "nodeTaintsPolicy": "Honor",
            "labelSelector": {"matchLabels": selector_labels(name)}}


def spread_constraints(svc: Service, options: RenderOptions) -> list[dict]:
    """The pod template's topology spread: the hostname spread, then (``zone_spread``,
    multi-replica services only) the zone spread."""
    out = [spread_constraint(svc.name)]
    if options.zone_spread and is_multi_replica(svc):
        out.append(zone_spread_constraint(svc.name))
    return out


def pod_toleration(t: Toleration) -> dict[str, str]:
    """A v1.Toleration as the API server returns it: empty key, value and effect left out
    (omitempty), the operator always written."""
    out = {"key": t.key} if t.key else {}
    out["operator"] = t.operator
    if t.value:
        out["value"] = t.value
    if t.effect:
        out["effect"] = t.effect
    return out


def _pod_template(svc: Service, options: RenderOptions) -> dict:
    labels = {**_svc_labels(svc), L_INJECT: "true" if svc.mesh_inject else "false"}
    annotations = {}
    if is_http(svc):
        annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": str(svc.port),
                       "prometheus.io/path": "/metrics"}
    uid = RUN_AS[svc.runtime]
    volumes: list[dict] = [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}]
    if svc.runtime in CONFIG_KEYS:
        volumes.append({"name": "config", "configMap": {"name": config_map_name(svc)}})
    if svc.runtime == "postgres":
        volumes.append({"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}})
    if svc.kind == "Deployment":
        volumes += [{"name": v.name, "persistentVolumeClaim": {"claimName": claim_name(svc, v.name)}}
                    for v in svc.volumes]
    containers = [_main_container(svc, options)]
    containers += [_extra_container(svc, i, options) for i in range(1, len(svc.containers))]
    spec = {
        "serviceAccountName": svc.name,
        "automountServiceAccountToken": svc.runtime == "prometheus",
        "securityContext": {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": 60 if svc.kind == "StatefulSet" else 30,
        "topologySpreadConstraints": spread_constraints(svc, options),
        "containers": containers,
        "volumes": volumes,
    }
    if svc.node_selector:
        spec["nodeSelector"] = dict(svc.node_selector)
    if svc.tolerations:
        spec["tolerations"] = [pod_toleration(t) for t in svc.tolerations]
    meta: dict = {"labels": labels}
    if annotations:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": spec}


def _workload_annotations(svc: Service, index: int) -> dict[str, str]:
    ann = {A_ORDER: str(index)}
    if svc.hpa is not None and svc.replicas > 0:
        ann[A_REPLICAS] = str(svc.replicas)  # the planned baseline, kept for import
    if svc.description:
        ann[A_DESCRIPTION] = svc.description
    if svc.image:
        ann[A_IMAGE] = svc.image
    for key, value in svc.sources.items():
        ann[A_SOURCE + key] = value
    return ann


def _workload(svc: Service, index: int, profile: Profile, options: RenderOptions) -> dict:
    spec: dict = {"revisionHistoryLimit": 5, "selector": {"matchLabels": selector_labels(svc.name)}}
    if svc.hpa is None or svc.replicas == 0:
        spec = {"replicas": svc.replicas, **spec}
    # With an HPA, spec.replicas is left to the HPA (its minReplicas is the plan's floor):
    # a replicas field here would reset a scaled-up service on every `kubectl apply`.
    if svc.kind == "StatefulSet":
        spec["serviceName"] = svc.name
        spec["podManagementPolicy"] = "OrderedReady"
        spec["updateStrategy"] = {"type": "RollingUpdate"}
    elif uses_recreate(svc):
        # a ReadWriteOnce volume cannot be attached to a surge pod (the plan assumes this)
        spec["strategy"] = {"type": "Recreate"}
    else:
        spec["strategy"] = {"type": "RollingUpdate",
                            "rollingUpdate": {"maxSurge": f"{int(MAX_SURGE * 100)}%",
                                              "maxUnavailable": "25%"}}
    spec["template"] = _pod_template(svc, options)
    if svc.kind == "StatefulSet":
        spec["volumeClaimTemplates"] = [{
            "metadata": {"name": v.name, "labels": selector_labels(svc.name)},
            "spec": _pvc_spec(v.size_bytes, v.access_mode, profile),
        } for v in svc.volumes]
    return {"apiVersion": "apps/v1", "kind": svc.kind,
            "metadata": _meta(svc.name, options.namespace, _svc_labels(svc),
                              _workload_annotations(svc, index)),
            "spec": spec}


def hpa_name(svc: Service) -> str:
    return f"{svc.name}-hpa"


def _hpa(svc: Service, options: RenderOptions) -> dict | None:
    if svc.hpa is None:
        return None
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(hpa_name(svc), options.namespace, _svc_labels(svc)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": svc.kind, "name": svc.name},
            "minReplicas": svc.hpa.min_replicas, "maxReplicas": svc.hpa.max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization",
                                          "averageUtilization": svc.hpa.cpu_utilization}}}],
        },
    }


def _pdb(svc: Service, options: RenderOptions) -> dict | None:
    if not is_multi_replica(svc):
        return None
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": _meta(f"{svc.name}-pdb", options.namespace, _svc_labels(svc)),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(svc.name)}}}


def _service(svc: Service, options: RenderOptions) -> dict:
    spec: dict = {}
    if svc.kind == "StatefulSet":
        spec["clusterIP"] = "None"   # headless: stable redis-0.redis names
    else:
        spec["type"] = "ClusterIP"
    spec["selector"] = selector_labels(svc.name)
    spec["ports"] = [{"name": _port_name(svc), "port": svc.port, "targetPort": _port_name(svc),
                      "protocol": "TCP", "appProtocol": "http" if is_http(svc) else "tcp"}]
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": _meta(svc.name, options.namespace, _svc_labels(svc)), "spec": spec}


def _prometheus_rbac(svc: Service, options: RenderOptions) -> list[dict]:
    labels = _svc_labels(svc)
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": _meta(f"{svc.name}-discovery", options.namespace, labels),
            "rules": [{"apiGroups": [""], "resources": ["pods", "services", "endpoints"],
                       "verbs": ["get", "list", "watch"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": _meta(f"{svc.name}-discovery", options.namespace, labels),
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                           "name": f"{svc.name}-discovery"},
               "subjects": [{"kind": "ServiceAccount", "name": svc.name,
                             "namespace": options.namespace}]}
    return [role, binding]


# -- network policies --------------------------------------------------------------------

def _tier_selector(tiers: tuple[str, ...]) -> dict:
    return {"matchExpressions": [{"key": L_TIER, "operator": "In", "values": list(tiers)}]}


def _ports(*ports: int) -> list[dict]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def _ns_selector(name: str) -> dict:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


def _network_policies(catalog: Catalog, options: RenderOptions) -> list[dict]:
    ns = options.namespace
    labels = _base_labels("network-policy", "network")

    def policy(name: str, spec: dict) -> dict:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": _meta(name, ns, labels), "spec": spec}

    out = [
        policy("default-deny-all", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        policy("allow-dns-egress", {
            "podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{**_ns_selector("kube-system"),
                                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}],
        }),
    ]
    apps = [s for s in catalog.services if s.tier in APP_TIERS]
    app_ports = sorted({s.port for s in apps})
    by_runtime = {s.runtime: s for s in catalog.services}
    prom = by_runtime.get("prometheus")
    prom_peer = [{"podSelector": {"matchLabels": selector_labels(prom.name)}}] if prom else []
    for s in catalog.services:
        ingress: list[dict] = []
        egress: list[dict] = []
        if s.tier in APP_TIERS:
            ingress.append({"from": [{"podSelector": _tier_selector(APP_TIERS)}] + prom_peer,
                            "ports": _ports(s.port)})
            if s.name == options.ingress_service:
                peers = [_ns_selector(options.ingress_controller_namespace)]
                if options.mesh == "istio":
                    peers.append(_ns_selector("istio-system"))
                ingress.append({"from": peers, "ports": _ports(s.port)})
            infra = [x for x in catalog.services if x.tier == "infrastructure"]
            for x in infra:
                egress.append({"to": [{"podSelector": {"matchLabels": selector_labels(x.name)}}],
                               "ports": _ports(x.port)})
            egress.append({"to": [{"podSelector": _tier_selector(APP_TIERS)}], "ports": _ports(*app_ports)})
            if s.name in EXTERNAL_EGRESS:
                egress.append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0",
                                                   "except": ["10.0.0.0/8", "172.16.0.0/12",
                                                              "192.168.0.0/16"]}}],
                               "ports": _ports(443)})
        elif s.tier == "infrastructure":
            ingress.append({"from": [{"podSelector": _tier_selector(APP_TIERS)}], "ports": _ports(s.port)})
        elif s.runtime == "prometheus":
            ingress.append({"from": [{"podSelector": _tier_selector(("monitoring",))}],
                            "ports": _ports(s.port)})
            scrape = sorted({x.port for x in catalog.services if is_http(x)})
            if options.mesh == "istio":
                scrape += [15020, 15090]   # Istio's merged metrics and the proxies' own
            egress.append({"to": [{"podSelector": {}}], "ports": _ports(*scrape)})
            egress.append({"ports": _ports(443, 6443)})  # the API server, for pod discovery
        elif s.runtime == "grafana":
            ingress.append({"from": [_ns_selector(options.ingress_controller_namespace)] + prom_peer,
                            "ports": _ports(s.port)})
            if prom:
                egress.append({"to": prom_peer, "ports": _ports(prom.port)})
        spec: dict = {"podSelector": {"matchLabels": selector_labels(s.name)},
                      "policyTypes": ["Ingress", "Egress"]}
        if ingress:
            spec["ingress"] = ingress
        if egress:
            spec["egress"] = egress
        out.append(policy(f"{s.name}-traffic", spec))
    if any(s.name == options.ingress_service for s in catalog.services):
        # cert-manager answers the Ingress's HTTP-01 challenge from a solver pod it starts
        # in this namespace; the ingress controller must reach it or no certificate issues
        out.append(policy("allow-acme-http01-solver", {
            "podSelector": {"matchLabels": {ACME_SOLVER_LABEL: "true"}}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [_ns_selector(options.ingress_controller_namespace)],
                         "ports": _ports(ACME_SOLVER_PORT)}],
        }))
    if options.mesh == "istio":
        out.append(policy("allow-istio-control-plane", {
            "podSelector": {}, "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [_ns_selector("istio-system")] + prom_peer,
                         "ports": _ports(15020, 15021, 15090)}],
            "egress": [{"to": [_ns_selector("istio-system")], "ports": _ports(15012, 15017)}],
        }))
    return out


# -- ingress and mesh --------------------------------------------------------------------

def _ingress(catalog: Catalog, options: RenderOptions) -> list[dict]:
    target = next((s for s in catalog.services if s.name == options.ingress_service), None)
    if target is None:
        return []
    return [{
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": _meta(target.name, options.namespace, _svc_labels(target), {
            "cert-manager.io/cluster-issuer": options.cluster_issuer,
            "nginx.ingress.kubernetes.io/ssl-redirect": "true",
            "nginx.ingress.kubernetes.io/limit-rps": "50",
            "nginx.ingress.kubernetes.io/proxy-body-size": "1m",
        }),
        "spec": {
            "ingressClassName": options.ingress_class,
            "tls": [{"hosts": [options.ingress_host], "secretName": options.tls_secret}],
            "rules": [{"host": options.ingress_host, "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": target.name, "port": {"number": target.port}}},
            }]}}],
        },
    }]


def _istio(catalog: Catalog, options: RenderOptions) -> list[dict]:
    ns = options.namespace
    labels = _base_labels("istio", "mesh")
    out: list[dict] = []
    target = next((s for s in catalog.services if s.name == options.ingress_service), None)
    if target is not None:
        out.append({
            "apiVersion": "networking.istio.io/v1beta1", "kind": "Gateway",
            "metadata": _meta("eafix-gateway", ns, labels),
            "spec": {"selector": {"istio": "ingressgateway"}, "servers": [
                {"port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                 "tls": {"mode": "SIMPLE", "credentialName": options.tls_secret},
                 "hosts": [options.ingress_host]},
                {"port": {"number": 80, "name": "http", "protocol": "HTTP"},
                 "tls": {"httpsRedirect": True}, "hosts": [options.ingress_host]},
            ]},
        })
        out.append({
            "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
            "metadata": _meta(target.name, ns, labels),
            "spec": {"hosts": [options.ingress_host], "gateways": ["eafix-gateway"], "http": [{
                "route": [{"destination": {"host": f"{target.name}.{ns}.svc.cluster.local",
                                           "port": {"number": target.port}}}],
                "timeout": "30s",
            }]},
        })
    for s in catalog.services:
        policy: dict = {"tls": {"mode": "ISTIO_MUTUAL"}}
        if is_http(s):
            policy["connectionPool"] = {"tcp": {"maxConnections": 100},
                                        "http": {"http1MaxPendingRequests": 100,
                                                 "maxRequestsPerConnection": 0}}
            policy["outlierDetection"] = {"consecutive5xxErrors": 5, "interval": "10s",
                                          "baseEjectionTime": "30s", "maxEjectionPercent": 50}
        else:
            policy["connectionPool"] = {"tcp": {"maxConnections": 200, "connectTimeout": "5s"}}
        out.append({"apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule",
                    "metadata": _meta(s.name, ns, labels),
                    "spec": {"host": f"{s.name}.{ns}.svc.cluster.local", "trafficPolicy": policy}})
    out.append({"apiVersion": "security.istio.io/v1beta1", "kind": "PeerAuthentication",
                "metadata": _meta("default", ns, labels), "spec": {"mtls": {"mode": "STRICT"}}})
    out.append({"apiVersion": "security.istio.io/v1beta1", "kind": "AuthorizationPolicy",
                "metadata": _meta("allow-same-namespace", ns, labels),
                "spec": {"action": "ALLOW", "rules": [{"from": [{"source": {"namespaces": [ns]}}]}]}})
    if target is not None:
        out.append({"apiVersion": "security.istio.io/v1beta1", "kind": "AuthorizationPolicy",
                    "metadata": _meta("allow-ingress-gateway", ns, labels),
                    "spec": {"action": "ALLOW",
                             "selector": {"matchLabels": selector_labels(target.name)},
                             "rules": [{"from": [{"source": {"principals": [
                                 "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"]}}],
                                 "to": [{"operation": {"ports": [str(target.port)]}}]}]}})
    return out


# -- the whole deployment ------------------------------------------------------------------

def render(catalog: Catalog, profile: Profile, options: RenderOptions | None = None) -> list[dict]:
    """Every object of the deployment, in apply order."""
    options = check_options(options or RenderOptions())
    if not catalog.services:
        raise InputError("empty catalogue", file=catalog.source_file or None, field="services",
                         valid="at least one service")
    ns = options.namespace
    objs: list[dict] = [_namespace(options), _resource_quota(catalog, profile, options),
                        _limit_range(catalog, options)]
    objs += [_service_account(s, options) for s in catalog.services]
    objs.append(_storage_class(profile, options))
    for s in catalog.services:
        objs += _pvcs(s, profile, options)
    objs.append(secret_template(ns, _base_labels(SECRET_NAME, "secrets")))
    objs += external_secret_objects(ns, _base_labels(SECRET_NAME, "secrets"))
    objs.append(_app_config(catalog, options))
    for s in catalog.services:
        cm = _runtime_config(s, catalog, options)
        if cm:
            objs.append(cm)
    for i, s in enumerate(catalog.services):
        objs.append(_workload(s, i, profile, options))
        objs += [o for o in (_hpa(s, options), _pdb(s, options)) if o]
        objs.append(_service(s, options))
        if s.runtime == "prometheus":
            objs += _prometheus_rbac(s, options)
    objs += _network_policies(catalog, options)
    objs += _ingress(catalog, options)
    if options.mesh == "istio":
        objs += _istio(catalog, options)
    return objs


__all__ = ["RenderOptions", "render", "check_options", "image_for", "spread_constraint",
           "zone_spread_constraint", "spread_constraints", "ZONE_KEY", "KUBERNETES_VERSION"]
