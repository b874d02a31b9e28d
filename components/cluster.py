"""K3sCluster: the server node bootstrapped over SSH, and the Kubernetes provider for the rest.

Every other component receives :attr:`K3sCluster.provider`; none creates its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_command as command
import pulumi_kubernetes as k8s
import yaml

from config.settings import Node, Settings

SCRIPTS = Path(__file__).parent / "scripts"


def script(name: str) -> str:
    """The text of a shell script shipped in components/scripts."""
    return (SCRIPTS / name).read_text()


@dataclass(frozen=True)
class K3sClusterArgs:
    settings: Settings
    ssh_private_key: pulumi.Output[str]


def server_config(settings: Settings) -> str:
    """The server's /etc/rancher/k3s/config.yaml: every flag in one reviewed file."""
    server = settings.server
    config = {
        "disable": ["traefik"],
        "tls-san": [server.address],
        "write-kubeconfig-mode": "0600",
        "cluster-cidr": settings.k3s.cluster_cidr,
        "service-cidr": settings.k3s.service_cidr,
        "node-ip": server.address,
    }
    return yaml.safe_dump(config, sort_keys=True)


def rewrite_kubeconfig(raw: str, address: str) -> str:
    """The kubeconfig k3s writes points at 127.0.0.1; clients need the server's address."""
    return raw.replace("https://127.0.0.1:6443", f"https://{address}:6443")


class K3sCluster(pulumi.ComponentResource):
    """Installs K3s on the server node and exposes a provider built from its kubeconfig."""

    kubeconfig: pulumi.Output[str]
    provider: k8s.Provider

    def __init__(self, name: str, args: K3sClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pi-cluster:cluster:K3sCluster", name, None, opts)
        settings = args.settings
        server = settings.server
        child = pulumi.ResourceOptions(parent=self)

        install = command.remote.Command(
            f"{name}-{server.name}-install",
            connection=self._connection(server, args.ssh_private_key),
            create=script("k3s-server.sh"),
            environment={
                "INSTALL_K3S_VERSION": settings.k3s.version,
                "K3S_CONFIG": server_config(settings),
            },
            triggers=[settings.k3s.version, server_config(settings)],
            opts=child,
        )
        read = command.remote.Command(
            f"{name}-{server.name}-kubeconfig",
            connection=self._connection(server, args.ssh_private_key),
            create="sudo cat /etc/rancher/k3s/k3s.yaml",
            logging=command.remote.Logging.NONE,
            triggers=[install.id],
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[install], additional_secret_outputs=["stdout"]
            ),
        )
        self.kubeconfig = pulumi.Output.secret(
            read.stdout.apply(lambda raw: rewrite_kubeconfig(raw, server.address))
        )
        self.provider = k8s.Provider(
            f"{name}-provider",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            opts=child,
        )
        self.register_outputs({"kubeconfig": self.kubeconfig})

    @staticmethod
    def _connection(node: Node, key: pulumi.Output[str]) -> command.remote.ConnectionArgs:
        return command.remote.ConnectionArgs(host=node.address, user=node.ssh_user, private_key=key)
