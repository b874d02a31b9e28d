"""Ingress and TLS: the ingress controller, cert-manager with Let's Encrypt over Cloudflare DNS-01,
the wildcard DNS record, and one Ingress per declared route.

Which controller runs (``ingress.controller``: ingress-nginx, the seed's, retired upstream in March
2026; or traefik) is known only inside this module: apps declare routes, and :meth:`IngressTls.publish`
turns the frozen registry into Ingresses with the class, TLS Secret ``<route>-tls``, the issuer and
the controller's own way of saying "https backend", "body size" and "timeouts".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pulumi
import pulumi_cloudflare as cloudflare
import pulumi_kubernetes as k8s

from components import capacity
from components import k8s as kb
from components.capacity import WorkloadRegistry
from components.guardrails import Flow, FlowRegistry, Peer
from components.metrics import MetricsRegistry, ScrapeTarget
from components.routes import Route, RouteRegistry
from components.secrets import Secrets
from config.settings import NAMESPACE, Settings, SettingsError

CERT_MANAGER_NAMESPACE = "cert-manager"
ACME_SERVERS = {
    "letsencrypt-prod": "https://acme-v02.api.letsencrypt.org/directory",
    "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}
CLOUDFLARE_SECRET = "cloudflare-api-token"
CLOUDFLARE_SECRET_KEY = "api-token"
HOST_PORT_REASON = "the controller binds hostPort 443 on the ingress node (Pi-hole owns :80 there)"

_BODY_SIZE = re.compile(r"^([0-9]+)([kKmMgG]?)$")
_UNIT = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}


def body_size_bytes(size: str) -> int:
    """Bytes in an nginx-style size such as ``100m``; ``0`` means unlimited."""
    match = _BODY_SIZE.match(size)
    if not match:
        raise ValueError(f"body size {size!r} is not a number with an optional k/m/g unit")
    return int(match.group(1)) * _UNIT[match.group(2).lower()]


@dataclass(frozen=True)
class IngressTlsArgs:
    settings: Settings
    provider: k8s.Provider
    secrets: Secrets
    # None when the stack has no Cloudflare record (ingress.cloudflareRecord: false).
    cloudflare_api_token: pulumi.Output[str] | None
    cloudflare_zone_id: pulumi.Output[str] | None
    metrics: MetricsRegistry
    workloads: WorkloadRegistry
    flows: FlowRegistry


class _Controller(Protocol):
    """What differs between ingress controllers; nothing outside this module sees it."""

    namespace: str
    class_name: str

    def values(self, s: Settings) -> dict[str, Any]: ...

    def value_files(self) -> list[pulumi.Asset]: ...

    def scrape_target(self) -> ScrapeTarget: ...

    def declare(self, s: Settings, workloads: WorkloadRegistry, flows: FlowRegistry) -> None: ...

    def route_objects(
        self, tls: IngressTls, route: Route, opts: pulumi.ResourceOptions
    ) -> dict[str, str]: ...


class _Nginx:
    """The seed's controller: everything per route is an ``nginx.ingress.kubernetes.io`` annotation."""

    namespace = "ingress-nginx"
    class_name = "nginx"

    def values(self, s: Settings) -> dict[str, Any]:
        """Keys as ingress-nginx chart 4.15.x reads them. nodeSelectors are spelled out whole
        (the chart's default ``kubernetes.io/os: linux`` included: maps merge) so the capacity
        declaration reads the placement the chart renders."""
        jobs = s.ingress.ingress_nginx.admission_jobs.spec()
        return {
            "controller": {
                # A DaemonSet pinned to one node: a rolling update frees hostPort 443 first.
                "kind": "DaemonSet",
                "nodeSelector": {"kubernetes.io/os": "linux", "kubernetes.io/hostname": s.placement.ingress},
                # The chart gives every containerPort a hostPort (chart 4.15.1
                # templates/controller-daemonset.yaml: `hostPort: {{ index
                # .Values.controller.hostPort.ports $key | default $value }}`). The string "0" is
                # not empty to sprig's `default`, renders `hostPort: 0`, which Kubernetes reads
                # as no host port: http keeps its container port and takes no :80 from Pi-hole.
                # No null: the provider drops nulls before Helm (pulumi-kubernetes before 4.30.0,
                # pulumi/pulumi-kubernetes#2997; the Python SDK drops None in values anyway).
                "hostPort": {"enabled": True, "ports": {"https": 443, "http": "0"}},
                "service": {"type": "ClusterIP", "enableHttp": False},
                "ingressClassResource": {"name": self.class_name, "default": False},
                "resources": s.ingress.ingress_nginx.resources.spec(),
                # The chart sets only the container's context; the pod's seccomp profile too.
                "podSecurityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                "metrics": {"enabled": True, "service": {"enabled": True}},
                # The certificate Jobs (pre-install create, post-install patch) run on every
                # install and upgrade; the chart gives them no requests or limits.
                "admissionWebhooks": {
                    "enabled": True,
                    "createSecretJob": {"resources": jobs},
                    "patchWebhookJob": {"resources": jobs},
                    "patch": {
                        "nodeSelector": {"kubernetes.io/os": "linux"},
                        "securityContext": {
                            "runAsNonRoot": True,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                    },
                },
            }
        }

    def value_files(self) -> list[pulumi.Asset]:
        return []

    def scrape_target(self) -> ScrapeTarget:
        return ScrapeTarget(
            name="ingress-nginx",
            namespace=self.namespace,
            selector={"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"},
            port="metrics",
        )

    def declare(self, s: Settings, workloads: WorkloadRegistry, flows: FlowRegistry) -> None:
        """The controller DaemonSet and its Services as chart 4.15.1 templates them (selector:
        name/instance + component controller; metrics Service port ``metrics`` 10254, admission
        webhook Service 443 -> container port ``webhook``)."""
        values = self.values(s)["controller"]
        pods = {**_instance("ingress-nginx"), "app.kubernetes.io/component": "controller"}
        workloads.add(
            capacity.from_values(
                "ingress-nginx-controller",
                self.namespace,
                containers={"controller": values["resources"]},
                daemonset=True,
                node_selector=values["nodeSelector"],
            )
        )
        hooks = values["admissionWebhooks"]
        for job, container in (("createSecretJob", "create"), ("patchWebhookJob", "patch")):
            workloads.add(
                capacity.from_values(
                    f"ingress-nginx-admission-{container}",
                    self.namespace,
                    containers={container: hooks[job]["resources"]},
                    kind="Job",
                    node_selector=hooks["patch"]["nodeSelector"],
                )
            )
        workloads.service("ingress-nginx-controller", self.namespace, pods, {443: "https"}, labels=pods)
        workloads.service(
            "ingress-nginx-controller-metrics",
            self.namespace,
            pods,
            {10254: "metrics"},
            labels=pods,
            port_names={"metrics": 10254},
        )
        workloads.service(
            "ingress-nginx-controller-admission", self.namespace, pods, {443: "webhook"}, labels=pods
        )
        flows.add(Flow("https-from-lan", _lan_peer(s), self.namespace, pods, (443,)))
        # The API server calls the validating webhook from the host network.
        flows.add(Flow("admission-webhook", Peer(nodes=True), self.namespace, pods, ("webhook",)))

    def route_objects(self, tls: IngressTls, route: Route, opts: pulumi.ResourceOptions) -> dict[str, str]:
        prefix = "nginx.ingress.kubernetes.io"
        notes: dict[str, str] = {}
        if route.protocol == "https":
            notes[f"{prefix}/backend-protocol"] = "HTTPS"
            notes[f"{prefix}/proxy-ssl-verify"] = (
                "on" if tls.settings.ingress.verify_https_backends else "off"
            )
        if route.body_size is not None:
            notes[f"{prefix}/proxy-body-size"] = route.body_size
        if route.read_timeout is not None:
            notes[f"{prefix}/proxy-read-timeout"] = str(route.read_timeout)
        if route.send_timeout is not None:
            notes[f"{prefix}/proxy-send-timeout"] = str(route.send_timeout)
        return notes


class _Traefik:
    """Traefik: router settings as Ingress annotations, backend settings through its own CRDs.

    An https backend or a timeout needs a ``ServersTransport`` that the backend Service names in
    ``traefik.ingress.kubernetes.io/service.*`` annotations; this component adds those to the
    app's Service with a server-side-apply patch, so apps never know Traefik runs.
    """

    namespace = "traefik"
    class_name = "traefik"

    def values(self, s: Settings) -> dict[str, Any]:
        """Keys as traefik chart 41.x reads them."""
        return {
            "deployment": {"kind": "DaemonSet"},
            "nodeSelector": {"kubernetes.io/hostname": s.placement.ingress},
            # hostPort 443 cannot surge on one node: replace the pod instead.
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
            },
            "ports": {"web": {"expose": {"default": False}}, "websecure": {"hostPort": 443}},
            # ClusterIP: a LoadBalancer Service would make k3s ServiceLB claim :80 on every node.
            "service": {"spec": {"type": "ClusterIP"}},
            "ingressClass": {"enabled": True, "isDefaultClass": False, "name": self.class_name},
            "providers": {"kubernetesCRD": {"enabled": True}, "kubernetesIngress": {"enabled": True}},
            "metrics": {"prometheus": {"service": {"enabled": True}}},
            "resources": s.ingress.traefik.resources.spec(),
        }

    def value_files(self) -> list[pulumi.Asset]:
        return []

    def scrape_target(self) -> ScrapeTarget:
        return ScrapeTarget(
            name="traefik",
            namespace=self.namespace,
            selector={"app.kubernetes.io/name": "traefik"},
            port="metrics",
        )

    def declare(self, s: Settings, workloads: WorkloadRegistry, flows: FlowRegistry) -> None:
        """The DaemonSet and its Services as traefik chart 41.x templates them (instance label
        ``<release>-<namespace>``; websecure container port 8443 behind hostPort 443; metrics
        Service ``traefik-metrics`` port ``metrics`` 9100)."""
        values = self.values(s)
        pods = {"app.kubernetes.io/name": "traefik", "app.kubernetes.io/instance": "traefik-traefik"}
        workloads.add(
            capacity.from_values(
                "traefik",
                self.namespace,
                values["resources"],
                daemonset=True,
                node_selector=values["nodeSelector"],
            )
        )
        workloads.service("traefik", self.namespace, pods, {443: "websecure"}, labels=pods)
        workloads.service(
            "traefik-metrics",
            self.namespace,
            pods,
            {9100: "metrics"},
            labels=pods,
            port_names={"metrics": 9100},
        )
        flows.add(Flow("https-from-lan", _lan_peer(s), self.namespace, pods, ("websecure",)))

    def route_objects(self, tls: IngressTls, route: Route, opts: pulumi.ResourceOptions) -> dict[str, str]:
        crd_opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[tls.controller]))
        notes = {
            "traefik.ingress.kubernetes.io/router.entrypoints": "websecure",
            "traefik.ingress.kubernetes.io/router.tls": "true",
        }
        if route.body_size is not None and body_size_bytes(route.body_size) > 0:
            middleware = f"{route.name}-body-size"
            k8s.apiextensions.CustomResource(
                f"{tls.name}-{route.name}-body-size",
                api_version="traefik.io/v1alpha1",
                kind="Middleware",
                metadata=kb.metadata(middleware, route.namespace, route.name),
                spec={"buffering": {"maxRequestBodyBytes": body_size_bytes(route.body_size)}},
                opts=crd_opts,
            )
            notes["traefik.ingress.kubernetes.io/router.middlewares"] = (
                f"{route.namespace}-{middleware}@kubernetescrd"
            )
        timeouts: dict[str, str] = {}
        if route.read_timeout is not None:
            timeouts["responseHeaderTimeout"] = f"{route.read_timeout}s"
        if (route.protocol == "https") or timeouts:
            transport = f"{route.name}-backend"
            spec: dict[str, Any] = {}
            if route.protocol == "https":
                spec["insecureSkipVerify"] = not tls.settings.ingress.verify_https_backends
            if timeouts:
                spec["forwardingTimeouts"] = timeouts
            st = k8s.apiextensions.CustomResource(
                f"{tls.name}-{route.name}-transport",
                api_version="traefik.io/v1alpha1",
                kind="ServersTransport",
                metadata=kb.metadata(transport, route.namespace, route.name),
                spec=spec,
                opts=crd_opts,
            )
            service_notes = {
                "traefik.ingress.kubernetes.io/service.serverstransport": (
                    f"{route.namespace}-{transport}@kubernetescrd"
                )
            }
            if route.protocol == "https":
                service_notes["traefik.ingress.kubernetes.io/service.serversscheme"] = "https"
            k8s.core.v1.ServicePatch(
                f"{tls.name}-{route.name}-backend-annotations",
                metadata={"name": route.service, "namespace": route.namespace, "annotations": service_notes},
                opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[st])),
            )
        return notes


def _instance(release: str, name: str | None = None) -> dict[str, str]:
    return {"app.kubernetes.io/name": name or release, "app.kubernetes.io/instance": release}


def _lan_peer(s: Settings) -> Peer:
    """Who reaches hostPort 443: LAN clients, and pods (Uptime Kuma's route monitors) whose
    traffic to the node address leaves through a node."""
    return Peer(nodes=True, cidrs=(s.lan_cidr,))


def declare_cert_manager(s: Settings, workloads: WorkloadRegistry, flows: FlowRegistry) -> None:
    """cert-manager's three Deployments and its Services as chart v1.21.1 templates them
    (controller metrics Service ``cert-manager`` port ``http-metrics`` 9402; webhook Service
    443 -> container port ``https``)."""
    values = cert_manager_values(s)
    for name, container, part, kind in (
        ("cert-manager", "cert-manager-controller", values, "Deployment"),
        ("cert-manager-webhook", "cert-manager-webhook", values["webhook"], "Deployment"),
        ("cert-manager-cainjector", "cert-manager-cainjector", values["cainjector"], "Deployment"),
        # The post-install hook that waits for the webhook to answer.
        ("cert-manager-startupapicheck", "cert-manager-startupapicheck", values["startupapicheck"], "Job"),
    ):
        workloads.add(
            capacity.from_values(
                name,
                CERT_MANAGER_NAMESPACE,
                containers={container: part["resources"]},
                kind=kind,
                node_selector=part["nodeSelector"],
            )
        )
    controller = {**_instance("cert-manager"), "app.kubernetes.io/component": "controller"}
    webhook = {**_instance("cert-manager", "webhook"), "app.kubernetes.io/component": "webhook"}
    workloads.service(
        "cert-manager",
        CERT_MANAGER_NAMESPACE,
        controller,
        {9402: 9402},
        labels=controller,
        port_names={"http-metrics": 9402},
    )
    workloads.service(
        "cert-manager-webhook",
        CERT_MANAGER_NAMESPACE,
        webhook,
        {443: "https", 9402: "http-metrics"},
        labels=webhook,
        port_names={"https": 443, "metrics": 9402},
    )
    flows.add(Flow("webhook-from-api-server", Peer(nodes=True), CERT_MANAGER_NAMESPACE, webhook, ("https",)))


CONTROLLERS: dict[str, type[_Nginx] | type[_Traefik]] = {"ingress-nginx": _Nginx, "traefik": _Traefik}


class IngressTls(pulumi.ComponentResource):
    """Controller + cert-manager + issuers + wildcard record; :meth:`publish` adds the Ingresses.

    Outputs are registered by :meth:`publish`, the component's last step, after every app has
    declared its routes.
    """

    controller: k8s.helm.v3.Release
    cert_manager: k8s.helm.v3.Release
    issuers: dict[str, k8s.apiextensions.CustomResource]
    record: cloudflare.DnsRecord | None  # None: ingress.cloudflareRecord is off
    address: str
    # The controller's pods, for NetworkPolicies that let it reach route backends.
    controller_namespace: str
    controller_selector: dict[str, str]

    def __init__(self, name: str, args: IngressTlsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pi-cluster:ingress:IngressTls", name, None, opts)
        s = args.settings
        self.name = name
        self.settings = s
        self._provider = args.provider
        self._impl: _Controller = CONTROLLERS[s.ingress.controller]()
        self.controller_namespace = self._impl.namespace
        self.controller_selector = dict(self._impl.scrape_target().selector)
        self.address = s.node(s.placement.ingress).address
        self._ingresses: list[k8s.networking.v1.Ingress] = []
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)

        controller_ns = kb.namespace(
            self._impl.namespace,
            resource_name=f"{name}-controller-namespace",
            pod_security="privileged",
            reason=HOST_PORT_REASON,
            opts=child,
            workloads=args.workloads,
        )
        chart = getattr(s.ingress, s.ingress.controller.replace("-", "_")).chart
        self.controller = kb.helm_release(
            s.ingress.controller,
            self._impl.namespace,
            s.chart_source(chart),
            self._impl.values(s),
            resource_name=f"{name}-controller",
            value_yaml_files=self._impl.value_files(),
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[controller_ns]),
        )

        cm_ns = kb.namespace(
            CERT_MANAGER_NAMESPACE,
            resource_name=f"{name}-cert-manager-namespace",
            opts=child,
            workloads=args.workloads,
        )
        cm = s.ingress.cert_manager
        self.cert_manager = kb.helm_release(
            "cert-manager",
            CERT_MANAGER_NAMESPACE,
            s.chart_source(cm.chart),
            cert_manager_values(s),
            resource_name=f"{name}-cert-manager",
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[cm_ns]),
        )

        token = args.secrets.external_secret(
            CLOUDFLARE_SECRET,
            CERT_MANAGER_NAMESPACE,
            {CLOUDFLARE_SECRET_KEY: s.ingress.cloudflare_token_ref},
            parent=self,
            depends_on=[cm_ns],
        )
        self.issuers = {
            issuer: k8s.apiextensions.CustomResource(
                f"{name}-{issuer}",
                api_version="cert-manager.io/v1",
                kind="ClusterIssuer",
                metadata=kb.metadata(issuer, None, "cert-manager"),
                spec=issuer_spec(s, server),
                opts=pulumi.ResourceOptions(
                    parent=self, provider=args.provider, depends_on=[self.cert_manager, token]
                ),
            )
            for issuer, server in ACME_SERVERS.items()
        }

        self.record = self._wildcard_record(args) if s.ingress.cloudflare_record else None
        self._impl.declare(s, args.workloads, args.flows)
        declare_cert_manager(s, args.workloads, args.flows)
        args.metrics.add(self._impl.scrape_target())
        args.metrics.add(
            ScrapeTarget(
                name="cert-manager",
                namespace=CERT_MANAGER_NAMESPACE,
                selector={
                    "app.kubernetes.io/name": "cert-manager",
                    "app.kubernetes.io/component": "controller",
                },
                port="http-metrics",
            )
        )

    def _wildcard_record(self, args: IngressTlsArgs) -> cloudflare.DnsRecord:
        """*.<domain> -> the ingress node, through a Cloudflare provider of the stack's token."""
        s = args.settings
        if args.cloudflare_api_token is None or args.cloudflare_zone_id is None:
            raise SettingsError(
                f"{NAMESPACE}:ingress.cloudflareRecord: on, but cloudflareApiToken or cloudflareZoneId "
                "was not read"
            )
        cf = cloudflare.Provider(
            f"{self.name}-cloudflare",
            api_token=args.cloudflare_api_token,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return cloudflare.DnsRecord(
            f"{self.name}-wildcard",
            zone_id=args.cloudflare_zone_id,
            # The API takes the complete name; `*.<domain>` is the `*.lab` record of the zone.
            name=f"*.{s.domain}",
            content=self.address,
            type="A",
            proxied=False,
            ttl=1,  # automatic
            comment="pi-cluster: every route's host resolves to the ingress node",
            opts=pulumi.ResourceOptions(parent=self, provider=cf),
        )

    @property
    def class_name(self) -> str:
        return self._impl.class_name

    def publish(self, routes: RouteRegistry) -> Sequence[k8s.networking.v1.Ingress]:
        """Freeze the registry and create one Ingress per route; call once, after every app."""
        if self._ingresses:
            raise RuntimeError("IngressTls.publish called twice")
        for route in routes.freeze():
            self._ingresses.append(self._ingress(route, routes.domain))
        self.register_outputs(
            {
                "controller": self.settings.ingress.controller,
                "address": self.address,
                "hosts": [r.host(routes.domain) for r in routes.freeze()],
            }
        )
        return tuple(self._ingresses)

    def _ingress(self, route: Route, domain: str) -> k8s.networking.v1.Ingress:
        opts = pulumi.ResourceOptions(
            parent=self, provider=self._provider, depends_on=[self.controller, *route.depends_on]
        )
        annotations = {
            "cert-manager.io/cluster-issuer": self.settings.ingress.issuer,
            **self._impl.route_objects(self, route, opts),
        }
        host = route.host(domain)
        return k8s.networking.v1.Ingress(
            f"{self.name}-{route.name}",
            metadata=kb.metadata(route.name, route.namespace, route.name, annotations=annotations),
            spec={
                "ingressClassName": self._impl.class_name,
                "tls": [{"hosts": [host], "secretName": route.tls_secret}],
                "rules": [
                    {
                        "host": host,
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {
                                        "service": {"name": route.service, "port": {"number": route.port}}
                                    },
                                }
                            ]
                        },
                    }
                ],
            },
            opts=opts,
        )


def issuer_spec(s: Settings, server: str) -> dict[str, Any]:
    """An ACME issuer solving DNS-01 through Cloudflare for the stack's domain."""
    issuer = next(k for k, v in ACME_SERVERS.items() if v == server)
    return {
        "acme": {
            "server": server,
            "email": s.ingress.acme_email,
            "privateKeySecretRef": {"name": f"{issuer}-account-key"},
            "solvers": [
                {
                    "selector": {"dnsZones": [s.domain]},
                    "dns01": {
                        "cloudflare": {
                            "apiTokenSecretRef": {"name": CLOUDFLARE_SECRET, "key": CLOUDFLARE_SECRET_KEY}
                        }
                    },
                }
            ],
        }
    }


def cert_manager_values(s: Settings) -> dict[str, Any]:
    """Keys as cert-manager chart v1.21.x reads them."""
    cm = s.ingress.cert_manager
    r = cm.resources.spec()
    # The chart's own default for every pod, spelled out so the capacity declaration reads it.
    linux = {"kubernetes.io/os": "linux"}
    return {
        "crds": {"enabled": True, "keep": True},
        "resources": r,
        "nodeSelector": linux,
        "webhook": {"resources": r, "nodeSelector": linux},
        "cainjector": {"resources": r, "nodeSelector": linux},
        "startupapicheck": {"resources": r, "nodeSelector": linux},
        # Rendered by the chart as --dns01-recursive-nameservers-only and
        # --dns01-recursive-nameservers: self checks never ask the LAN's Pi-hole.
        "dns01RecursiveNameserversOnly": True,
        "dns01RecursiveNameservers": ",".join(cm.recursive_nameservers),
        "prometheus": {"enabled": True, "servicemonitor": {"enabled": False}},
    }
