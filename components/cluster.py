"""K3sCluster: three Raspberry Pi OS hosts to a labelled K3s cluster over SSH, and the one
Kubernetes provider every other component uses.

Per node, each step a ``command.remote.Command`` running a script from components/scripts
(parameters through ``environment``; node-prepare.sh makes sshd accept them):

    prepare -> wait (SSH back after a reboot) -> dns (if staticDns) -> install/join -> labels

The server's join token and kubeconfig are read after its install, as secrets; agents join
after the token; the provider is built from the kubeconfig once every node carries its labels.

Lifecycle: a changed input makes Pulumi *update* a command, which reruns its script (scripts
change only what differs); ``triggers`` force a replacement. Install commands have no delete
step, so a replacement never uninstalls. Removal lives in separate commands that only have a
delete step: ``<node>-drain`` (on the server) and ``<node>-uninstall`` (on the host, a no-op
unless allowUninstall / allowServerWipe was true when last applied).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_command as command
import pulumi_kubernetes as k8s
import yaml

from config.settings import Node, Settings

SCRIPTS = Path(__file__).parent / "scripts"
PER_DIAL_TIMEOUT = 10  # seconds per SSH dial attempt while waiting for a reboot
CGROUP_ARGS = ("cgroup_memory=1", "cgroup_enable=memory")


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
    config: dict[str, Any] = dict(settings.k3s.extra_server_config)
    config.update(
        {
            "disable": ["traefik"],
            "tls-san": [server.address],
            "write-kubeconfig-mode": "0600",
            "cluster-cidr": settings.k3s.cluster_cidr,
            "service-cidr": settings.k3s.service_cidr,
            "node-ip": server.address,
        }
    )
    return yaml.safe_dump(config, sort_keys=True)


def agent_config(node: Node) -> str:
    """An agent's /etc/rancher/k3s/config.yaml (the server and token come from the installer)."""
    return yaml.safe_dump({"node-ip": node.address}, sort_keys=True)


def rewrite_kubeconfig(raw: str, address: str) -> str:
    """The kubeconfig k3s writes points at 127.0.0.1; clients need the server's address."""
    return raw.replace("https://127.0.0.1:6443", f"https://{address}:6443")


def node_labels(node: Node) -> str:
    """``key=value`` lines for node-labels.sh, sorted so the environment is stable."""
    return "\n".join(f"{k}={v}" for k, v in sorted(node.labels.items()))


def node_taints(node: Node) -> str:
    """``key=value:Effect`` lines for node-labels.sh."""
    return "\n".join(
        f"{t.key}={t.value}:{t.effect}" for t in sorted(node.taints, key=lambda t: (t.key, t.effect))
    )


def reboot_dial_limit(timeout_seconds: int) -> int:
    """SSH dial attempts that cover the reboot timeout (each attempt waits PER_DIAL_TIMEOUT)."""
    return max(1, math.ceil(timeout_seconds / PER_DIAL_TIMEOUT))


class K3sCluster(pulumi.ComponentResource):
    """Bootstraps every node over SSH and exposes a provider built from the server's kubeconfig."""

    kubeconfig: pulumi.Output[str]
    provider: k8s.Provider

    def __init__(self, name: str, args: K3sClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pi-cluster:cluster:K3sCluster", name, None, opts)
        self._name = name
        self._key = args.ssh_private_key
        settings = args.settings
        k3s = settings.k3s
        server = settings.server
        wait = str(k3s.ready_timeout_seconds)

        ready = {n.name: self._prepare(n, settings) for n in settings.nodes}

        # Server: install, then read the join token and the kubeconfig as secrets.
        install = self._command(
            server,
            "install",
            "k3s-install.sh",
            {
                "PI_CLUSTER_ROLE": "server",
                "INSTALL_K3S_VERSION": k3s.version,
                "PI_CLUSTER_K3S_CONFIG": server_config(settings),
                "PI_CLUSTER_INSTALLER_URL": k3s.installer_url,
                "PI_CLUSTER_WAIT_SECONDS": wait,
            },
            depends_on=ready[server.name],
            triggers=[k3s.version],
        )
        token = self._read(server, "token", install)
        kubeconfig = self._read(server, "kubeconfig", install)

        # Server wipe on destroy only when allowed; drains run before it (they depend on it).
        server_guard = self._uninstall_guard(server, "k3s-uninstall.sh", k3s.allow_server_wipe, install)
        joined: dict[str, pulumi.Resource] = {server.name: install}
        removal: list[pulumi.Resource] = []
        for agent in settings.agents:
            join = self._command(
                agent,
                "join",
                "k3s-install.sh",
                {
                    "PI_CLUSTER_ROLE": "agent",
                    "INSTALL_K3S_VERSION": k3s.version,
                    "PI_CLUSTER_K3S_CONFIG": agent_config(agent),
                    "PI_CLUSTER_INSTALLER_URL": k3s.installer_url,
                    "K3S_URL": f"https://{server.address}:6443",
                    "K3S_TOKEN": pulumi.Output.secret(token.stdout),
                },
                depends_on=[*ready[agent.name], install],
                triggers=[k3s.version],
            )
            joined[agent.name] = join
            guard = self._uninstall_guard(agent, "k3s-agent-uninstall.sh", k3s.allow_uninstall, join)
            drain = command.remote.Command(
                f"{name}-{agent.name}-drain",
                connection=self._connection(server),
                delete=script("node-remove.sh"),
                environment={
                    "PI_CLUSTER_STEP": "drain",
                    "PI_CLUSTER_NODE": agent.name,
                    "PI_CLUSTER_WAIT_SECONDS": wait,
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[join, guard, server_guard]),
            )
            removal += [guard, drain]

        labels = [
            self._command(
                server,
                "labels",
                "node-labels.sh",
                {
                    "PI_CLUSTER_NODE": node.name,
                    "PI_CLUSTER_LABELS": node_labels(node),
                    "PI_CLUSTER_TAINTS": node_taints(node),
                    "PI_CLUSTER_WAIT_SECONDS": wait,
                },
                depends_on=list({joined[node.name], install}),
                resource_name=f"{name}-{node.name}-labels",  # runs on the server, named for the node
            )
            for node in settings.nodes
        ]

        self.kubeconfig = pulumi.Output.secret(
            kubeconfig.stdout.apply(lambda raw: rewrite_kubeconfig(raw, server.address))
        )
        self.provider = k8s.Provider(
            f"{name}-provider",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=labels),
        )
        self.register_outputs({"kubeconfig": self.kubeconfig})

    # -- steps -------------------------------------------------------------------------------

    def _prepare(self, node: Node, settings: Settings) -> list[pulumi.Resource]:
        """Kernel cmdline, swap and sshd; the bounded wait for SSH after a reboot; static DNS."""
        prepare = self._command(node, "prepare", "node-prepare.sh", {})
        # The wait's "script" is the dial: retried until the node answers again, within the
        # reboot timeout; then node-wait.sh checks the node came back as K3s needs it.
        limit = reboot_dial_limit(settings.k3s.reboot_timeout_seconds)
        wait = command.remote.Command(
            f"{self._name}-{node.name}-wait",
            connection=self._connection(node, dial_error_limit=limit),
            create=script("node-wait.sh"),
            triggers=[prepare.stdout],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[prepare]),
        )
        steps: list[pulumi.Resource] = [prepare, wait]
        if node.static_dns:
            steps.append(
                self._command(
                    node,
                    "dns",
                    "node-dns.sh",
                    {
                        "PI_CLUSTER_NM_CONNECTION": node.nm_connection,
                        "PI_CLUSTER_DNS_SERVERS": " ".join(node.dns_resolvers),
                        "PI_CLUSTER_DNS_MODE": "static",
                    },
                    depends_on=[wait],
                    # Turning staticDns off (or removing the node) hands DNS back to DHCP.
                    delete=f"export PI_CLUSTER_DNS_MODE=auto\n{script('node-dns.sh')}",
                )
            )
        return steps

    def _read(self, server: Node, what: str, install: command.remote.Command) -> command.remote.Command:
        """A server file as a secret: no logging, stdout marked secret."""
        return command.remote.Command(
            f"{self._name}-{server.name}-{what}",
            connection=self._connection(server),
            create=script("k3s-read.sh"),
            environment={"PI_CLUSTER_FILE": what},
            logging=command.remote.Logging.NONE,
            triggers=[install.stdout],
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[install], additional_secret_outputs=["stdout"]
            ),
        )

    def _uninstall_guard(
        self, node: Node, uninstaller: str, allow: bool, installed: pulumi.Resource
    ) -> command.remote.Command:
        """A command with only a delete step: uninstalls K3s from the host when it is deleted,
        if the setting allowed it when last applied (toggling the setting is an update, never
        a delete, so turning it off cannot trigger an uninstall)."""
        return command.remote.Command(
            f"{self._name}-{node.name}-uninstall",
            connection=self._connection(node),
            delete=script("node-remove.sh"),
            environment={
                "PI_CLUSTER_STEP": "uninstall",
                "PI_CLUSTER_NODE": node.name,
                "PI_CLUSTER_UNINSTALLER": uninstaller,
                "PI_CLUSTER_ALLOW": "yes" if allow else "no",
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[installed]),
        )

    def _command(
        self,
        node: Node,
        step: str,
        script_name: str,
        environment: dict[str, Any],
        *,
        depends_on: list[pulumi.Resource] | None = None,
        triggers: list[Any] | None = None,
        delete: str | None = None,
        resource_name: str | None = None,
    ) -> command.remote.Command:
        return command.remote.Command(
            resource_name or f"{self._name}-{node.name}-{step}",
            connection=self._connection(node),
            create=script(script_name),
            delete=delete,
            environment=environment or None,
            triggers=triggers,
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on or []),
        )

    def _connection(
        self, node: Node, *, dial_error_limit: int | None = None
    ) -> command.remote.ConnectionArgs:
        return command.remote.ConnectionArgs(
            host=node.address,
            user=node.ssh_user,
            private_key=self._key,
            dial_error_limit=dial_error_limit,
            per_dial_timeout=PER_DIAL_TIMEOUT if dial_error_limit else None,
        )
