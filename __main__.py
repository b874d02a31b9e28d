"""pi-cluster: composition only. Settings -> cluster -> platform -> apps -> derived -> exports."""

import pulumi

from components import secrets as secrets_component
from components.backups import Backups, BackupsArgs
from components.capacity import WorkloadRegistry
from components.cluster import ExistingCluster, ExistingClusterArgs, K3sCluster, K3sClusterArgs
from components.dns import DnsStack, DnsStackArgs
from components.external_services import ExternalServices, ExternalServicesArgs
from components.guardrails import FlowRegistry, Guardrails, GuardrailsArgs, Peer
from components.homepage import Homepage, HomepageArgs, homepage_route
from components.ingress import IngressTls, IngressTlsArgs
from components.media import Media, MediaArgs
from components.metrics import MetricsRegistry
from components.monitoring import Monitoring, MonitoringArgs, ServiceMonitors, ServiceMonitorsArgs
from components.routes import RouteRegistry
from components.secrets import Secrets, SecretsArgs
from components.status import Status, StatusArgs, status_route
from components.volumes import VolumeRegistry
from config.settings import load

settings, secrets = load()

# A running cluster (existingCluster) or one bootstrapped over SSH; either yields the provider.
cluster: ExistingCluster | K3sCluster = (
    ExistingCluster("k3s", ExistingClusterArgs(settings, secrets.require("kubeconfig")))
    if settings.existing_cluster
    else K3sCluster("k3s", K3sClusterArgs(settings, secrets.require("sshPrivateKey")))
)
provider = cluster.provider
routes = RouteRegistry(settings.domain)
volumes = VolumeRegistry(ephemeral_reason=settings.ephemeral_volumes or "")
metrics = MetricsRegistry()
workloads = WorkloadRegistry()
flows = FlowRegistry()

# Platform: secrets, ingress and TLS, monitoring.
platform_secrets = Secrets(
    "secrets",
    SecretsArgs(
        settings=settings,
        provider=provider,
        onepassword_token=secrets.onepassword_token,
        workloads=workloads,
        flows=flows,
    ),
)
metrics.add(secrets_component.METRICS_TARGET)
ingress = IngressTls(
    "ingress",
    IngressTlsArgs(
        settings=settings,
        provider=provider,
        secrets=platform_secrets,
        cloudflare_api_token=secrets.cloudflare_api_token,
        cloudflare_zone_id=secrets.cloudflare_zone_id,
        metrics=metrics,
        workloads=workloads,
        flows=flows,
    ),
)
monitoring = Monitoring(
    "monitoring",
    MonitoringArgs(
        settings=settings,
        provider=provider,
        routes=routes,
        volumes=volumes,
        secrets=platform_secrets,
        workloads=workloads,
        flows=flows,
    ),
)

# Apps: each declares its routes, volumes and scrape targets.
dns = DnsStack(
    "dns",
    DnsStackArgs(
        settings=settings,
        provider=provider,
        secrets=platform_secrets,
        routes=routes,
        volumes=volumes,
        metrics=metrics,
        workloads=workloads,
        flows=flows,
    ),
)
external_services = ExternalServices(
    "external-services",
    ExternalServicesArgs(settings=settings, provider=provider, routes=routes, workloads=workloads),
)
media = (
    Media("media", MediaArgs(settings, provider, routes, volumes, platform_secrets, workloads, flows))
    if settings.media
    else None
)

# Status and Homepage declare their routes last, then derive monitors and tiles from all routes.
routes.add(status_route(settings))
routes.add(homepage_route())
all_routes = routes.freeze()
status = Status(
    "status",
    StatusArgs(
        settings=settings,
        provider=provider,
        routes=all_routes,
        volumes=volumes,
        secrets=platform_secrets,
        workloads=workloads,
        flows=flows,
    ),
)
homepage = Homepage(
    "homepage",
    HomepageArgs(
        settings=settings,
        provider=provider,
        routes=all_routes,
        secrets=platform_secrets,
        workloads=workloads,
        flows=flows,
    ),
)

# Backups read the volume registry (and freeze it): after every component that declares volumes.
backups = None
if settings.backups and media:
    backups = Backups(
        "backups",
        BackupsArgs(
            settings,
            provider,
            volumes,
            platform_secrets,
            media.postgres_service,
            workloads=workloads,
            flows=flows,
            postgres_pods=media.postgres_pods,
        ),
    )

# Derived from the registries.
scrape_targets = metrics.freeze()
ServiceMonitors(
    "scrape",
    ServiceMonitorsArgs(targets=scrape_targets, release=monitoring.release, provider=provider),
)
ingress.publish(routes)

# Last: every route, scrape target, flow and workload is declared by now. Fails the preview
# when the nodes cannot hold the stack, naming the node and the figures.
guardrails = Guardrails(
    "guardrails",
    GuardrailsArgs(
        settings=settings,
        provider=provider,
        workloads=workloads,
        ingress_peer=Peer(ingress.controller_namespace, ingress.controller_selector),
        routes=all_routes,
        metrics=scrape_targets,
        flows=flows.flows(),
    ),
)

pulumi.export("urls", routes.urls())
pulumi.export("dnsServer", settings.node(settings.placement.pihole).address)
pulumi.export(
    "nodes",
    {n.name: {"address": n.address, "role": n.role, "model": n.hardware.model} for n in settings.nodes},
)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("capacity", guardrails.capacity)
# The one step no resource can do: Uptime Kuma's first admin (components/status.py).
pulumi.export("uptimeKumaSetup", status.first_admin)
