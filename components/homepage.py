"""Homepage: the front door, its services generated from the frozen route registry.

Each route becomes exactly one tile in its dashboard group. A route may ask for a live widget;
the widget's type must be one Homepage ships and that this module knows the credentials of.
Credentials never enter the configuration: a widget field holds ``{{HOMEPAGE_VAR_<NAME>}}``,
Homepage substitutes the environment variable, and the variable comes from its own
ExternalSecret (``homepage-<name>``, one per variable), whose 1Password reference is the setting
``homepage.credentials.HOMEPAGE_VAR_<NAME>``. Refused at preview, naming the route or the key:
a widget that is unknown or lacks such a reference, and two tiles reading the same variable
(one Secret would silently win).

The ServiceAccount reads nodes, pods, namespaces, ingresses and metrics, nothing else: no
Secrets, no ConfigMaps (the configuration is copied from a ConfigMap by an init container).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components import k8s as kb
from components.capacity import WorkloadRegistry
from components.guardrails import Flow, FlowRegistry, Peer, url_flow
from components.routes import Dashboard, Route, RouteError
from components.secrets import Secrets
from config.settings import Settings

NAMESPACE = "homepage"
APP = "homepage"
PORT = 3000
CONFIG_MAP = "homepage-config"
ROLE = "homepage-readonly"
VAR = re.compile(r"^\{\{(HOMEPAGE_VAR_[A-Z0-9_]+)\}\}$")
DEFAULT_GROUP = "Services"


@dataclass(frozen=True)
class WidgetSpec:
    """What Homepage's widget of this type needs (docs/widgets/services at the pinned tag)."""

    credentials: tuple[str, ...] = ()  # fields that carry a secret
    fixed: Mapping[str, Any] = field(default_factory=dict)


WIDGETS: dict[str, WidgetSpec] = {
    "pihole": WidgetSpec(credentials=("key",), fixed={"version": 6}),
    "prometheus": WidgetSpec(),
    "jellyfin": WidgetSpec(credentials=("key",), fixed={"enableBlocks": True}),
    "immich": WidgetSpec(credentials=("key",), fixed={"version": 2}),
    "unifi": WidgetSpec(credentials=("username", "password")),
}
# Widgets Homepage ships that the stack cannot feed, and why.
REFUSED_WIDGETS = {
    "uptimekuma": "it shows a status page, and the stack creates none (components/status.py "
    "status_route: AutoKuma 2.0.0 status pages list monitors by Uptime Kuma's numeric id)",
}

# Rules for the read-only ClusterRole (what the kubernetes widgets and discovery read).
CLUSTER_ROLE_RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["namespaces", "pods", "nodes"], "verbs": ["get", "list"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": ["get", "list"]},
    {"apiGroups": ["metrics.k8s.io"], "resources": ["nodes", "pods"], "verbs": ["get", "list"]},
]


@dataclass(frozen=True)
class HomepageArgs:
    settings: Settings
    provider: k8s.Provider
    routes: Sequence[Route]  # the frozen registry
    secrets: Secrets
    workloads: WorkloadRegistry
    flows: FlowRegistry


def homepage_route() -> Route:
    return Route(
        name="home",
        host_prefix="home",
        namespace=NAMESPACE,
        service=APP,
        port=PORT,
        health_path="/api/healthcheck",
        dashboard=Dashboard(group="Monitoring", icon="homepage.png", description="This dashboard"),
    )


def title(route: Route) -> str:
    return " ".join(part.capitalize() for part in route.name.split("-"))


def internal_url(route: Route) -> str:
    return f"{route.protocol}://{route.service}.{route.namespace}.svc.cluster.local:{route.port}"


def backend_flows(workloads: WorkloadRegistry, pairs: Sequence[tuple[Route, Tile]]) -> list[Flow | None]:
    """Homepage calls each tile's siteMonitor and widget URL inside the cluster: one flow to
    the pods behind each Service it names."""
    source = Peer(NAMESPACE, kb.selector(APP))
    out: list[Flow | None] = []
    for route, t in pairs:
        out.append(url_flow(workloads, f"homepage-to-{route.name}", source, t.entry["siteMonitor"]))
        widget_url = (t.entry.get("widget") or {}).get("url")
        if widget_url and widget_url.split("/")[2] != t.entry["siteMonitor"].split("/")[2]:
            out.append(url_flow(workloads, f"homepage-widget-{route.name}", source, widget_url))
    return out


def default_var(route: Route, field_name: str) -> str:
    return f"HOMEPAGE_VAR_{route.name}_{field_name}".upper().replace("-", "_")


@dataclass(frozen=True)
class Tile:
    group: str
    name: str
    entry: dict[str, Any]
    credentials: dict[str, str]  # HOMEPAGE_VAR_* -> 1Password reference


def tile(route: Route, domain: str, credentials: Mapping[str, str]) -> Tile:
    """The Homepage service entry for one route; raises RouteError naming the route."""
    board = route.dashboard or Dashboard(group=DEFAULT_GROUP, icon=f"{route.name}.png")
    entry: dict[str, Any] = {
        "href": route.url(domain),
        "icon": board.icon,
        "siteMonitor": f"{internal_url(route)}{route.health_path}",
    }
    if board.description:
        entry["description"] = board.description
    used: dict[str, str] = {}
    if board.widget is not None:
        spec = WIDGETS.get(board.widget)
        if board.widget in REFUSED_WIDGETS:
            raise RouteError(
                f"route {route.name!r}: dashboard widget {board.widget!r} cannot be used: "
                f"{REFUSED_WIDGETS[board.widget]}"
            )
        if spec is None:
            raise RouteError(
                f"route {route.name!r}: dashboard widget type {board.widget!r} is unknown "
                f"(known: {', '.join(sorted(WIDGETS))})"
            )
        fields = dict(board.widget_fields)
        widget: dict[str, Any] = {"type": board.widget, "url": internal_url(route), **spec.fixed}
        for name in spec.credentials:
            value = fields.pop(name, "{{" + default_var(route, name) + "}}")
            match = VAR.match(str(value))
            if not match:
                raise RouteError(
                    f"route {route.name!r}: widget field {name!r} must reference a "
                    "{{HOMEPAGE_VAR_<NAME>}} variable, not a literal credential"
                )
            var = match.group(1)
            if var not in credentials:
                raise RouteError(
                    f"route {route.name!r}: widget {board.widget!r} needs credential {name!r} from "
                    f"{var}, which has no ExternalSecret key; set "
                    f"pi-cluster:homepage.credentials.{var} to a 1Password item/field"
                )
            used[var] = credentials[var]
            widget[name] = value
        for name, value in fields.items():
            if isinstance(value, str) and "HOMEPAGE_VAR_" in value:
                raise RouteError(
                    f"route {route.name!r}: widget field {name!r} is not a credential field of "
                    f"{board.widget!r} but references {value!r}"
                )
            widget[name] = value
        entry["widget"] = widget
    return Tile(board.group, title(route), entry, used)


def tiles(routes: Sequence[Route], domain: str, credentials: Mapping[str, str]) -> list[tuple[Route, Tile]]:
    """Every route's tile; refuses a variable read by two tiles."""
    pairs = [(route, tile(route, domain, credentials)) for route in routes]
    readers: dict[str, str] = {}
    for route, t in pairs:
        for var in t.credentials:
            if var in readers:
                raise RouteError(
                    f"routes {readers[var]!r} and {route.name!r} both read {var}: give each tile its "
                    "own variable (one Secret per variable; a shared one would silently win)"
                )
            readers[var] = route.name
    return pairs


def secret_name(var: str) -> str:
    """``homepage-<name>`` for ``HOMEPAGE_VAR_<NAME>``: one ExternalSecret per variable."""
    return "homepage-" + var.removeprefix("HOMEPAGE_VAR_").lower().replace("_", "-")


def services_yaml(pairs: Sequence[tuple[Route, Tile]]) -> list[dict[str, Any]]:
    """services.yaml: groups in order of first appearance, tiles in route order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for _, t in pairs:
        groups.setdefault(t.group, []).append({t.name: t.entry})
    return [{group: entries} for group, entries in groups.items()]


def settings_yaml(s: Settings, groups: Sequence[str]) -> dict[str, Any]:
    return {
        "title": s.homepage.title,
        "theme": "dark",
        "color": "slate",
        "headerStyle": "boxed",
        "statusStyle": "dot",
        "hideVersion": True,
        "target": "_blank",
        "layout": {group: {"style": "row", "columns": 3} for group in groups},
    }


def widgets_yaml(s: Settings) -> list[dict[str, Any]]:
    w = s.homepage.weather
    return [
        {
            "kubernetes": {
                "cluster": {"show": True, "cpu": True, "memory": True, "showLabel": True, "label": "cluster"},
                "nodes": {"show": True, "cpu": True, "memory": True, "showLabel": True},
            }
        },
        {"datetime": {"text_size": "xl", "format": {"dateStyle": "long", "timeStyle": "short"}}},
        {"search": {"provider": "duckduckgo", "target": "_blank"}},
        {
            "openmeteo": {
                "label": w.label,
                "latitude": w.latitude,
                "longitude": w.longitude,
                "timezone": s.timezone,
                "units": w.units,
                "cache": 5,
            }
        },
    ]


def kubernetes_yaml() -> dict[str, Any]:
    return {"mode": "cluster", "ingress": True}


def config_files(s: Settings, routes: Sequence[Route]) -> tuple[dict[str, str], list[tuple[Route, Tile]]]:
    """The four configuration files Homepage reads, as YAML text, and the tiles behind them."""
    pairs = tiles(routes, s.domain, s.homepage.credentials)
    services = services_yaml(pairs)
    groups = [next(iter(g)) for g in services]

    def dump(value: Any) -> str:
        return yaml.safe_dump(value, sort_keys=False, default_flow_style=False, width=1000)

    files = {
        "services.yaml": dump(services),
        "settings.yaml": dump(settings_yaml(s, groups)),
        "widgets.yaml": dump(widgets_yaml(s)),
        "kubernetes.yaml": dump(kubernetes_yaml()),
        "bookmarks.yaml": dump([]),
        "docker.yaml": dump({}),
    }
    return files, pairs


class Homepage(pulumi.ComponentResource):
    """Homepage with configuration, widget credentials and least-privilege RBAC."""

    def __init__(self, name: str, args: HomepageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pi-cluster:homepage:Homepage", name, None, opts)
        s = args.settings
        files, pairs = config_files(s, args.routes)  # refuses bad widgets before any child
        own = homepage_route()
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        ns = kb.namespace(NAMESPACE, resource_name=f"{name}-namespace", opts=child, workloads=args.workloads)
        in_ns = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[ns])

        env_from_secrets: dict[str, tuple[str, str]] = {}
        credential_secrets: list[pulumi.Resource] = []
        for var, ref in sorted(ref for _, t in pairs for ref in t.credentials.items()):
            secret = secret_name(var)
            credential_secrets.append(
                args.secrets.external_secret(secret, NAMESPACE, {var: ref}, parent=self, depends_on=[ns])
            )
            env_from_secrets[var] = (secret, var)

        config = k8s.core.v1.ConfigMap(
            f"{name}-config", metadata=kb.metadata(CONFIG_MAP, NAMESPACE, APP), data=files, opts=in_ns
        )
        account = k8s.core.v1.ServiceAccount(
            f"{name}-serviceaccount",
            metadata=kb.metadata(APP, NAMESPACE, APP),
            automount_service_account_token=False,
            opts=in_ns,
        )
        role = k8s.rbac.v1.ClusterRole(
            f"{name}-clusterrole",
            metadata=kb.metadata(ROLE, None, APP),
            rules=CLUSTER_ROLE_RULES,
            opts=child,
        )
        k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-clusterrolebinding",
            metadata=kb.metadata(ROLE, None, APP),
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ROLE},
            subjects=[{"kind": "ServiceAccount", "name": APP, "namespace": NAMESPACE}],
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[role, account]),
        )
        digest = hashlib.sha256("".join(f"{k}\n{v}" for k, v in sorted(files.items())).encode()).hexdigest()
        copy = kb.container(
            "config",
            s.homepage.image,
            s.homepage.resources,
            command=["sh", "-c", "cp -L /config-src/*.yaml /app/config/"],
            volume_mounts=[
                {"name": "config-src", "mountPath": "/config-src", "readOnly": True},
                {"name": "config", "mountPath": "/app/config"},
            ],
            run_as_user=1000,
        )
        health = {
            "httpGet": {
                "path": "/api/healthcheck",
                "port": "http",
                "httpHeaders": [{"name": "Host", "value": f"localhost:{PORT}"}],
            },
            "periodSeconds": 15,
            "timeoutSeconds": 5,
            "failureThreshold": 4,
        }
        main = kb.container(
            APP,
            s.homepage.image,
            s.homepage.resources,
            # The public host, and the Service's own address its tile's siteMonitor calls.
            env={
                "HOMEPAGE_ALLOWED_HOSTS": f"home.{s.domain},{internal_url(own).split('://', 1)[1]}",
                "PUID": "1000",
                "PGID": "1000",
            },
            env_from_secrets=env_from_secrets,
            ports=[{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
            volume_mounts=[
                {"name": "config", "mountPath": "/app/config"},
                {"name": "cache", "mountPath": "/app/.next/cache"},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
            readiness=health,
            liveness=health,
            run_as_user=1000,
        )
        kb.deployment(
            APP,
            NAMESPACE,
            [main],
            pod=kb.PodOptions(
                service_account=APP,
                automount_token=True,  # the kubernetes widget reads the API
                fs_group=1000,
                run_as_user=1000,
                init_containers=[copy],
                volumes=[
                    {"name": "config-src", "configMap": {"name": CONFIG_MAP}},
                    {"name": "config", "emptyDir": {}},
                    {"name": "cache", "emptyDir": {}},
                    {"name": "tmp", "emptyDir": {}},
                ],
            ),
            pod_annotations={"pi-cluster/config-sha256": digest},
            resource_name=f"{name}-deployment",
            workloads=args.workloads,
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=[config, account, *credential_secrets]
            ),
        )
        kb.service(
            APP,
            NAMESPACE,
            [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}],
            resource_name=f"{name}-service",
            opts=in_ns,
            workloads=args.workloads,
        )
        args.flows.add_all(backend_flows(args.workloads, pairs))
        self.services = [t.name for _, t in pairs]
        self.register_outputs({"services": self.services})
