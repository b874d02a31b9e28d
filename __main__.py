"""pi-cluster: composition only. Settings -> cluster -> platform -> apps -> exports."""

import pulumi

from components import secrets as secrets_component
from components.cluster import K3sCluster, K3sClusterArgs
from components.homepage import Homepage, HomepageArgs, homepage_route
from components.metrics import MetricsRegistry
from components.monitoring import Monitoring, MonitoringArgs, ServiceMonitors, ServiceMonitorsArgs
from components.routes import RouteRegistry
from components.secrets import Secrets, SecretsArgs
from components.status import Status, StatusArgs, status_route
from components.volumes import VolumeRegistry
from config.settings import load

settings, secrets = load()

cluster = K3sCluster("k3s", K3sClusterArgs(settings=settings, ssh_private_key=secrets.ssh_private_key))
provider = cluster.provider
routes = RouteRegistry(settings.domain)
volumes = VolumeRegistry()
metrics = MetricsRegistry()

platform_secrets = Secrets(
    "secrets",
    SecretsArgs(settings=settings, provider=provider, onepassword_token=secrets.onepassword_token),
)
metrics.add(secrets_component.METRICS_TARGET)
monitoring = Monitoring(
    "monitoring",
    MonitoringArgs(
        settings=settings, provider=provider, routes=routes, volumes=volumes, secrets=platform_secrets
    ),
)

# Status and Homepage declare their routes last, then derive monitors and tiles from all routes.
routes.add(status_route(settings))
routes.add(homepage_route())
all_routes = routes.freeze()
Status(
    "status",
    StatusArgs(
        settings=settings, provider=provider, routes=all_routes, volumes=volumes, secrets=platform_secrets
    ),
)
Homepage(
    "homepage",
    HomepageArgs(settings=settings, provider=provider, routes=all_routes, secrets=platform_secrets),
)
ServiceMonitors(
    "scrape",
    ServiceMonitorsArgs(targets=metrics.freeze(), release=monitoring.release, provider=provider),
)

pulumi.export("urls", routes.urls())
pulumi.export("dnsServer", settings.node(settings.placement.pihole).address)
pulumi.export(
    "nodes",
    {n.name: {"address": n.address, "role": n.role, "model": n.hardware.model} for n in settings.nodes},
)
pulumi.export("kubeconfig", cluster.kubeconfig)
