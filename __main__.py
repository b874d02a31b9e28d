"""pi-cluster: composition only. Settings -> cluster -> platform -> apps -> exports."""

import pulumi

from components.capacity import WorkloadRegistry
from components.cluster import K3sCluster, K3sClusterArgs
from components.guardrails import FlowRegistry, Guardrails, GuardrailsArgs
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
workloads = WorkloadRegistry()
flows = FlowRegistry()

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

# Last: every route, scrape target, flow and workload is declared by now.
guardrails = Guardrails(
    "guardrails",
    GuardrailsArgs(
        settings=settings,
        provider=provider,
        workloads=workloads,
        routes=routes.freeze(),
        metrics=metrics.targets(),
        flows=flows.flows(),
        after=[platform_secrets],
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
