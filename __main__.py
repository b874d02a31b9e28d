"""pi-cluster: composition only. Settings -> cluster -> platform -> apps -> exports."""

import pulumi

from components.backups import Backups, BackupsArgs
from components.cluster import K3sCluster, K3sClusterArgs
from components.external_services import ExternalServices, ExternalServicesArgs
from components.ingress import IngressTls, IngressTlsArgs
from components.media import Media, MediaArgs
from components.metrics import MetricsRegistry
from components.routes import RouteRegistry
from components.secrets import Secrets, SecretsArgs
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

ingress = IngressTls(
    "ingress",
    IngressTlsArgs(
        settings=settings,
        provider=provider,
        secrets=platform_secrets,
        cloudflare_api_token=secrets.cloudflare_api_token,
        cloudflare_zone_id=secrets.cloudflare_zone_id,
        metrics=metrics,
    ),
)
ExternalServices(
    "external-services", ExternalServicesArgs(settings=settings, provider=provider, routes=routes)
)

media = (
    Media("media", MediaArgs(settings, provider, routes, volumes, platform_secrets))
    if settings.media
    else None
)

# Backups read the volume registry: build them after every component that declares stateful
# volumes (the registry is frozen then; a later declaration fails) and before status/homepage.
if settings.backups and media:
    Backups("backups", BackupsArgs(settings, provider, volumes, platform_secrets, media.postgres_service))

# Apps above declare their routes; the ingress reads the registry last (it freezes it).
ingress.publish(routes)

pulumi.export("urls", routes.urls())
pulumi.export("dnsServer", settings.node(settings.placement.pihole).address)
pulumi.export(
    "nodes",
    {n.name: {"address": n.address, "role": n.role, "model": n.hardware.model} for n in settings.nodes},
)
pulumi.export("kubeconfig", cluster.kubeconfig)
