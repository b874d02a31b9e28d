"""Monitoring: kube-prometheus-stack (Prometheus, Alertmanager, Grafana, node-exporter,
kube-state-metrics), the alert rules, the dashboards, and one ServiceMonitor per scrape target.

The release name is fixed, so the chart's Services have names other components can rely on
(:data:`PROMETHEUS_URL`, :data:`GRAFANA_SERVICE`). Chart values are built from settings with the
keys kube-prometheus-stack 80.6.0 and its subcharts read (see :func:`chart_values`).
Secrets never pass through the program: Grafana's admin and the Discord webhook come from
1Password through ExternalSecrets.

Alertmanager's whole configuration is an External Secrets template (:func:`alertmanager_template`)
that ESO fills with the webhook into the Secret the Alertmanager reads (``useExistingSecret``,
``configSecret``). It cannot name a file instead: kube-prometheus-stack 80.6.0 always sets
``alertmanagerConfigSelector`` (templates/alertmanager/alertmanager.yaml), so prometheus-operator
v0.87.1 re-reads the configuration with ``yaml.UnmarshalStrict`` into its own types
(pkg/alertmanager/amcfg.go alertmanagerConfigFromBytes; types.go discordConfig has
``webhook_url`` and no ``webhook_url_file``) and rejects what they lack, and then no
configuration is generated at all. tests/tools/amcfg-check runs that code on the template.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components import capacity
from components import k8s as kb
from components.capacity import WorkloadRegistry
from components.guardrails import Flow, FlowRegistry, Peer
from components.metrics import ScrapeTarget
from components.routes import Dashboard, Route, RouteRegistry
from components.secrets import Secrets
from components.volumes import VolumeRegistry, stateful_pvc
from config.settings import Settings

NAMESPACE = "monitoring"
# node-exporter alone needs the host (hostNetwork, hostPID, hostPath): its own namespace keeps
# the privileged Pod Security level away from Prometheus, Grafana and Alertmanager.
NODE_EXPORTER_NAMESPACE = "node-exporter"
RELEASE = "kube-prometheus-stack"  # fullname = release name, so Services are "<release>-<part>"
PROMETHEUS_SERVICE = f"{RELEASE}-prometheus"
PROMETHEUS_URL = f"http://{PROMETHEUS_SERVICE}.{NAMESPACE}.svc.cluster.local:9090"
ALERTMANAGER_URL = f"http://{RELEASE}-alertmanager.{NAMESPACE}.svc.cluster.local:9093"
GRAFANA_SERVICE = f"{RELEASE}-grafana"  # the grafana subchart's "<release>-grafana"
GRAFANA_PVC = "grafana"
GRAFANA_ADMIN_SECRET = "grafana-admin"
# The Secret holding alertmanager.yaml (prometheus-operator v0.87.1 pkg/alertmanager/statefulset.go:
# configSecret, key alertmanagerConfigFile = "alertmanager.yaml"), filled by an ExternalSecret.
ALERTMANAGER_CONFIG_SECRET = "alertmanager-config"
ALERTMANAGER_CONFIG_KEY = "alertmanager.yaml"
# The template value with the webhook; ESO's v2 engine is Go text/template over the data keys.
DISCORD_KEY = "webhook"
DISCORD_PLACEHOLDER = "{{ ." + DISCORD_KEY + " }}"
# The Alertmanager the chart runs: kube-prometheus-stack 80.6.0 values.yaml
# alertmanager.alertmanagerSpec.image.tag (spec.version defaults to it); the operator checks the
# configuration against this version.
ALERTMANAGER_VERSION = "v0.30.0"
DASHBOARD_LABEL = "grafana_dashboard"  # the chart's grafana.sidecar.dashboards.label default

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
RULES_FILE = CONFIG_DIR / "alerts" / "rules.yaml"
DASHBOARDS_DIR = CONFIG_DIR / "dashboards"

# 1Password item/field references.
GRAFANA_ADMIN_REFS = {"admin-user": "grafana/username", "admin-password": "grafana/password"}
DISCORD_WEBHOOK_REF = "discord/webhook-url"


class DataFileError(ValueError):
    """A data file shipped with the stack is malformed; the message names file and line."""


@dataclass(frozen=True)
class MonitoringArgs:
    settings: Settings
    provider: k8s.Provider
    routes: RouteRegistry
    volumes: VolumeRegistry
    secrets: Secrets
    workloads: WorkloadRegistry
    flows: FlowRegistry


def grafana_route() -> Route:
    """Grafana's route; its tile carries the Prometheus widget (Prometheus has no route)."""
    return Route(
        name="grafana",
        host_prefix="grafana",
        namespace=NAMESPACE,
        service=GRAFANA_SERVICE,
        port=80,
        health_path="/api/health",
        dashboard=Dashboard(
            group="Monitoring",
            icon="grafana.png",
            description="Dashboards and alerts",
            widget="prometheus",
            widget_fields={"url": PROMETHEUS_URL},
        ),
    )


def load_rules(path: Path = RULES_FILE) -> dict[str, Any]:
    """The alert rules file as a PrometheusRule spec (``{"groups": [...]}``)."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise DataFileError(f"{path.name}{line}: not valid YAML ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("groups"), list) or not data["groups"]:
        raise DataFileError(f"{path.name}: expected a mapping with a non-empty 'groups' list")
    return data


def load_dashboards(folder: Path = DASHBOARDS_DIR) -> dict[str, str]:
    """Dashboard JSON per file stem; each must parse and carry a uid and a title."""
    out: dict[str, str] = {}
    for path in sorted(folder.glob("*.json")):
        text = path.read_text()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataFileError(f"{path.name}:{err.lineno}: not valid JSON ({err.msg})") from None
        for key in ("uid", "title", "panels"):
            if key not in data:
                raise DataFileError(f"{path.name}: dashboard has no {key!r}")
        out[path.stem] = text
    if not out:
        raise DataFileError(f"{folder}: no dashboards (*.json)")
    return out


def alertmanager_config() -> dict[str, Any]:
    """Alertmanager's configuration: everything to Discord, the webhook as the ESO placeholder.

    The chart's defaults (Watchdog and InfoInhibitor routed to ``null``, severity inhibitions)
    are kept. Only fields prometheus-operator v0.87.1's own types have (pkg/alertmanager/types.go).
    """
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": "discord",
            "group_by": ["alertname", "namespace"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "12h",
            "routes": [
                {"receiver": "null", "matchers": ['alertname = "Watchdog"']},
                {"receiver": "null", "matchers": ['alertname = "InfoInhibitor"']},
            ],
        },
        "inhibit_rules": [
            {
                "source_matchers": ["severity = critical"],
                "target_matchers": ["severity =~ warning|info"],
                "equal": ["namespace", "alertname"],
            },
            {
                "source_matchers": ["severity = warning"],
                "target_matchers": ["severity = info"],
                "equal": ["namespace", "alertname"],
            },
        ],
        "receivers": [
            {"name": "null"},
            {
                "name": "discord",
                "discord_configs": [{"webhook_url": DISCORD_PLACEHOLDER, "send_resolved": True}],
            },
        ],
        "templates": ["/etc/alertmanager/config/*.tmpl"],
    }


def alertmanager_template(config: dict[str, Any] | None = None) -> str:
    """alertmanager.yaml as the ExternalSecret's template; the placeholder is its only action."""
    text = yaml.safe_dump(alertmanager_config() if config is None else config, sort_keys=False)
    if text.count("{{") != 1 or DISCORD_PLACEHOLDER not in text:
        raise ValueError("the Alertmanager configuration may hold no template action but the webhook's")
    return text


def chart_values(s: Settings) -> dict[str, Any]:
    """kube-prometheus-stack 80.6.0 values (keys checked against the chart's values.yaml and
    those of its subcharts grafana 10.4.0, kube-state-metrics 7.0.0, prometheus-node-exporter
    4.49.2)."""
    m = s.monitoring
    r = m.resources
    pin = {"kubernetes.io/hostname": s.placement.monitoring}
    return {
        "crds": {"enabled": True},
        # k3s runs etcd, scheduler, controller-manager and proxy inside one process that does
        # not expose them where the chart looks: scraping them only produces down targets.
        "kubeEtcd": {"enabled": False},
        "kubeScheduler": {"enabled": False},
        "kubeControllerManager": {"enabled": False},
        "kubeProxy": {"enabled": False},
        "defaultRules": {
            "rules": {
                "etcd": False,
                "kubeControllerManager": False,
                "kubeSchedulerAlerting": False,
                "kubeSchedulerRecording": False,
                "kubeProxy": False,
                "windows": False,
            }
        },
        "prometheusOperator": {
            "resources": r.operator.spec(),
            "nodeSelector": pin,
            "prometheusConfigReloader": {"resources": r.config_reloader.spec()},
            "admissionWebhooks": {
                "patch": {"resources": r.admission_webhooks.spec()},
                "deployment": {"resources": r.admission_webhooks.spec()},
            },
        },
        "prometheus": {
            "prometheusSpec": {
                "retention": m.retention,
                "retentionSize": m.retention_size,
                "resources": r.prometheus.spec(),
                "nodeSelector": pin,
                # Select every ServiceMonitor and rule, not only those labelled for this release.
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "podMonitorSelectorNilUsesHelmValues": False,
                "ruleSelectorNilUsesHelmValues": False,
                "storageSpec": {
                    "volumeClaimTemplate": {
                        "spec": {
                            "storageClassName": "local-path",
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": m.storage_size}},
                        }
                    }
                },
            }
        },
        "alertmanager": {
            "enabled": True,
            "alertmanagerSpec": {
                "resources": r.alertmanager.spec(),
                "nodeSelector": pin,
                # The chart renders no configuration Secret; the ExternalSecret's is read.
                "useExistingSecret": True,
                "configSecret": ALERTMANAGER_CONFIG_SECRET,
            },
        },
        "grafana": {
            "enabled": True,
            "admin": {
                "existingSecret": GRAFANA_ADMIN_SECRET,
                "userKey": "admin-user",
                "passwordKey": "admin-password",
            },
            "deploymentStrategy": {"type": "Recreate"},
            "persistence": {"enabled": True, "existingClaim": GRAFANA_PVC},
            # The chart's chown init container runs as root; fsGroup 472 already owns the volume.
            "initChownData": {"enabled": False},
            "nodeSelector": pin,
            "resources": r.grafana.spec(),
            "grafana.ini": {"server": {"root_url": f"https://grafana.{s.domain}"}},
            "defaultDashboardsTimezone": s.timezone,
            "sidecar": {
                "resources": r.grafana_sidecar.spec(),
                "dashboards": {
                    "enabled": True,
                    "label": DASHBOARD_LABEL,
                    "labelValue": "1",
                    "searchNamespace": NAMESPACE,
                },
            },
        },
        "kube-state-metrics": {"resources": r.kube_state_metrics.spec()},
        "prometheus-node-exporter": {
            "namespaceOverride": NODE_EXPORTER_NAMESPACE,
            "resources": r.node_exporter.spec(),
            # Reads /proc, /sys and the root filesystem: no capability, no privilege escalation.
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containerSecurityContext": {
                "readOnlyRootFilesystem": True,
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
            # The subchart's defaults, spelled out so the capacity declaration reads them.
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"effect": "NoSchedule", "operator": "Exists"}],
        },
    }


# prometheus-node-exporter 4.49.2 templates/_helpers.tpl "defaultAffinity": merged into every pod
# whatever the values say (no Pi carries these labels, so it excludes nothing here).
NODE_EXPORTER_AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {
                    "matchExpressions": [
                        {"key": "eks.amazonaws.com/compute-type", "operator": "NotIn", "values": ["fargate"]},
                        {"key": "type", "operator": "NotIn", "values": ["virtual-kubelet"]},
                    ]
                }
            ]
        }
    }
}


# Pod selectors of the chart's Services (kube-prometheus-stack 80.6.0 templates; subcharts
# select on name + instance = release).
PROMETHEUS_PODS = {
    "app.kubernetes.io/name": "prometheus",
    "operator.prometheus.io/name": f"{RELEASE}-prometheus",
}
ALERTMANAGER_PODS = {"app.kubernetes.io/name": "alertmanager", "alertmanager": f"{RELEASE}-alertmanager"}
OPERATOR_PODS = {"app": f"{RELEASE}-operator", "release": RELEASE}
GRAFANA_PODS = {"app.kubernetes.io/name": "grafana", "app.kubernetes.io/instance": RELEASE}
KSM_PODS = {"app.kubernetes.io/name": "kube-state-metrics", "app.kubernetes.io/instance": RELEASE}


def declare_workloads(s: Settings, workloads: WorkloadRegistry, flows: FlowRegistry) -> None:
    """What the chart runs, with the resources and placement :func:`chart_values` gives it: the
    operator, Prometheus and Alertmanager (each with its config-reloader sidecar), Grafana with
    its sidecars, kube-state-metrics (movable) and node-exporter (a DaemonSet that
    tolerates every NoSchedule taint, the subchart's default). Then the Services other
    components point at, and the flows inside the monitoring stack."""
    values = chart_values(s)
    r = s.monitoring.resources
    pin = s.placement.monitoring
    reloader = r.config_reloader.spec()
    operator = values["prometheusOperator"]
    grafana = values["grafana"]
    sidecar = grafana["sidecar"]["resources"]
    # Container names as the charts (and prometheus-operator v0.87.1 for Prometheus and
    # Alertmanager, with their config-reloader sidecar and init container) name them; the
    # operator makes those two StatefulSets (v0.87.1 pkg/prometheus/server/statefulset.go and
    # pkg/alertmanager/statefulset.go).
    for name, containers, init, kind in (
        (f"{RELEASE}-operator", {RELEASE: operator["resources"]}, {}, None),
        (
            f"prometheus-{RELEASE}-prometheus",
            {"prometheus": values["prometheus"]["prometheusSpec"]["resources"], "config-reloader": reloader},
            {"init-config-reloader": reloader},
            "StatefulSet",
        ),
        (
            f"alertmanager-{RELEASE}-alertmanager",
            {
                "alertmanager": values["alertmanager"]["alertmanagerSpec"]["resources"],
                "config-reloader": reloader,
            },
            {"init-config-reloader": reloader},
            "StatefulSet",
        ),
        # Grafana with two sidecars (dashboards, and datasources, which the parent chart enables).
        (
            f"{RELEASE}-grafana",
            {
                "grafana-sc-dashboard": sidecar,
                "grafana-sc-datasources": sidecar,
                "grafana": grafana["resources"],
            },
            {},
            None,
        ),
    ):
        workloads.add(
            capacity.from_values(
                name, NAMESPACE, containers=containers, init_containers=init, kind=kind, node=pin
            )
        )
    # The admission webhook's certificate Jobs (pre-install create, post-install patch).
    for job in ("create", "patch"):
        workloads.add(
            capacity.from_values(
                f"{RELEASE}-admission-{job}",
                NAMESPACE,
                containers={job: operator["admissionWebhooks"]["patch"]["resources"]},
                kind="Job",
            )
        )
    workloads.add(
        capacity.from_values(
            f"{RELEASE}-kube-state-metrics",
            NAMESPACE,
            containers={"kube-state-metrics": values["kube-state-metrics"]["resources"]},
        )
    )
    exporter = values["prometheus-node-exporter"]
    workloads.add(
        capacity.from_values(
            f"{RELEASE}-prometheus-node-exporter",
            NODE_EXPORTER_NAMESPACE,
            containers={"node-exporter": exporter["resources"]},
            daemonset=True,
            node_selector=exporter["nodeSelector"],
            tolerations=exporter["tolerations"],
            affinity=NODE_EXPORTER_AFFINITY,
        )
    )
    # (name, pod selector, ports, labels: a part of the Service's own labels, as the chart renders them)
    services: tuple[tuple[str, dict[str, str], dict[int, int | str], dict[str, str]], ...] = (
        (
            PROMETHEUS_SERVICE,
            PROMETHEUS_PODS,
            {9090: 9090, 8080: "reloader-web"},
            {"app": f"{RELEASE}-prometheus", "release": RELEASE},
        ),
        (
            f"{RELEASE}-alertmanager",
            ALERTMANAGER_PODS,
            {9093: 9093, 8080: "reloader-web"},
            {"app": f"{RELEASE}-alertmanager", "release": RELEASE},
        ),
        (f"{RELEASE}-operator", OPERATOR_PODS, {443: "https"}, OPERATOR_PODS),
        (GRAFANA_SERVICE, GRAFANA_PODS, {80: 3000}, GRAFANA_PODS),
        (f"{RELEASE}-kube-state-metrics", KSM_PODS, {8080: "http"}, KSM_PODS),
    )
    for name, pods, ports, labels in services:
        workloads.service(name, NAMESPACE, pods, ports, labels=labels)
    prometheus = Peer(NAMESPACE, PROMETHEUS_PODS)
    for flow in (
        # The chart's own ServiceMonitors: Prometheus scrapes itself, Alertmanager, the operator,
        # Grafana and kube-state-metrics (node-exporter runs on the host network).
        Flow("prometheus-self-scrape", prometheus, NAMESPACE, PROMETHEUS_PODS, (9090, "reloader-web")),
        Flow("prometheus-to-alertmanager", prometheus, NAMESPACE, ALERTMANAGER_PODS, (9093, "reloader-web")),
        Flow("prometheus-to-operator", prometheus, NAMESPACE, OPERATOR_PODS, ("https",)),
        Flow("prometheus-to-grafana", prometheus, NAMESPACE, GRAFANA_PODS, (3000,)),
        Flow("prometheus-to-kube-state-metrics", prometheus, NAMESPACE, KSM_PODS, ("http",)),
        Flow("grafana-to-prometheus", Peer(NAMESPACE, GRAFANA_PODS), NAMESPACE, PROMETHEUS_PODS, (9090,)),
        # The operator's admission webhook (PrometheusRule validation), called by the API server.
        Flow("operator-webhook-from-api-server", Peer(nodes=True), NAMESPACE, OPERATOR_PODS, ("https",)),
    ):
        flows.add(flow)


def service_monitor(target: ScrapeTarget) -> dict[str, Any]:
    """The ServiceMonitor for one scrape target; ``job`` is the target's name."""
    relabelings = [
        {"action": "replace", "targetLabel": key, "replacement": value}
        for key, value in sorted(target.labels.items())
    ]
    relabelings.append({"action": "replace", "targetLabel": "job", "replacement": target.name})
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": kb.metadata(target.name, target.namespace, target.name),
        "spec": {
            "selector": {"matchLabels": dict(target.selector)},
            "namespaceSelector": {"matchNames": [target.namespace]},
            "endpoints": [
                {
                    "port": target.port,
                    "path": target.path,
                    "interval": target.interval,
                    "relabelings": relabelings,
                }
            ],
        },
    }


class Monitoring(pulumi.ComponentResource):
    """kube-prometheus-stack with Grafana's dashboards, the alert rules and the grafana route."""

    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pi-cluster:monitoring:Monitoring", name, None, opts)
        s = args.settings
        rules = load_rules()
        dashboards = load_dashboards()
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        args.routes.add(grafana_route())

        ns = kb.namespace(
            NAMESPACE,
            resource_name=f"{name}-namespace",
            opts=child,
            pod_security="baseline",
            reason="the chart's operator, Prometheus, Alertmanager and Grafana pods set their own "
            "security contexts, not vetted against restricted; none needs host access",
            workloads=args.workloads,
        )
        exporter_ns = kb.namespace(
            NODE_EXPORTER_NAMESPACE,
            resource_name=f"{name}-node-exporter-namespace",
            opts=child,
            pod_security="privileged",
            reason="prometheus-node-exporter reads the host's /proc, /sys and root filesystem "
            "with hostNetwork and hostPID",
            workloads=args.workloads,
        )
        in_ns = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[ns])
        declare_workloads(s, args.workloads, args.flows)
        admin = args.secrets.external_secret(
            GRAFANA_ADMIN_SECRET, NAMESPACE, GRAFANA_ADMIN_REFS, parent=self, depends_on=[ns]
        )
        alertmanager_config_secret = args.secrets.external_secret(
            ALERTMANAGER_CONFIG_SECRET,
            NAMESPACE,
            {DISCORD_KEY: DISCORD_WEBHOOK_REF},
            template={ALERTMANAGER_CONFIG_KEY: alertmanager_template()},
            parent=self,
            depends_on=[ns],
        )
        grafana_pvc = stateful_pvc(
            args.volumes,
            name=GRAFANA_PVC,
            namespace=NAMESPACE,
            size=s.monitoring.grafana_storage_size,
            node=s.placement.monitoring,
            sqlite=True,
            app="grafana",
            resource_name=f"{name}-grafana-pvc",
            opts=in_ns,
        )
        boards = [
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{stem}",
                metadata=kb.metadata(
                    f"dashboard-{stem}", NAMESPACE, "grafana", extra_labels={DASHBOARD_LABEL: "1"}
                ),
                data={f"{stem}.json": text},
                opts=in_ns,
            )
            for stem, text in dashboards.items()
        ]
        chart = s.monitoring.chart
        self.release = kb.helm_release(
            RELEASE,
            NAMESPACE,
            s.chart_source(chart),
            chart_values(s),
            resource_name=f"{name}-kube-prometheus-stack",
            timeout=900,
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=args.provider,
                depends_on=[ns, exporter_ns, admin, alertmanager_config_secret, grafana_pvc, *boards],
            ),
        )
        k8s.apiextensions.CustomResource(
            f"{name}-alert-rules",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata=kb.metadata("pi-cluster-alerts", NAMESPACE, "prometheus"),
            spec=rules,
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[self.release]),
        )
        self.prometheus_url = PROMETHEUS_URL
        self.register_outputs({"release": self.release.name, "prometheusUrl": PROMETHEUS_URL})


@dataclass(frozen=True)
class ServiceMonitorsArgs:
    targets: Sequence[ScrapeTarget]
    release: pulumi.Resource  # the release that installs the ServiceMonitor CRD
    provider: k8s.Provider


class ServiceMonitors(pulumi.ComponentResource):
    """One ServiceMonitor per declared scrape target, derived after every component declared."""

    def __init__(self, name: str, args: ServiceMonitorsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pi-cluster:monitoring:ServiceMonitors", name, None, opts)
        names: Mapping[str, str] = {}
        for target in args.targets:
            manifest = service_monitor(target)
            k8s.apiextensions.CustomResource(
                f"{name}-{target.namespace}-{target.name}",
                api_version=manifest["apiVersion"],
                kind=manifest["kind"],
                metadata=manifest["metadata"],
                spec=manifest["spec"],
                opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[args.release]),
            )
            names = {**names, f"{target.namespace}/{target.name}": target.port}
        self.register_outputs({"targets": dict(names)})
