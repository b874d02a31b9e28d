"""K3sCluster: Raspberry Pi OS hosts (Bookworm or Trixie images) to a labelled K3s cluster over
SSH, and the one Kubernetes provider every other component uses.

Per node, each step a ``command.remote.Command`` running a script from components/scripts
(parameters through ``environment``; node-prepare.sh makes sshd accept them):

    identity -> prepare -> wait (SSH back after a reboot) -> dns -> install/join -> labels

``identity`` is not a resource: host-identity.sh runs locally on every preview and up and reads
the node's /etc/machine-id over SSH (checking the host key and passwordless sudo on the way).
Every command of a node carries it (in its environment, for node-prepare.sh in ``triggers``), so
a new card under the same address runs the whole bootstrap again; delete steps check the
machine-id they were made for and leave a new host alone.

Every connection checks the node's host key (``hostKey``; a node may only skip it with a stated
reason), and no command gets its previous output in the environment (pulumi-command's default
would resend the join token, and sshd refuses PULUMI_COMMAND_STDOUT).

Lifecycle: a changed input makes Pulumi *update* a command, which reruns its script (scripts
change only what differs); ``triggers`` force a replacement. Install commands have no delete
step, so a replacement never uninstalls. Removal lives in separate commands that only have a
delete step: ``<node>-drain`` (on the server, never needs the node itself) and
``<node>-uninstall`` (on the host; it has a delete step only while allowUninstall /
allowServerWipe is true, so removing a dead node reaches nothing but the server).

ExistingCluster is the other way in (setting ``existingCluster``): a cluster that already runs,
its kubeconfig a stack secret; no node is touched. Both give the same provider and outputs.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_command as command
import pulumi_kubernetes as k8s
import yaml

from config.settings import Node, Settings

SCRIPTS = Path(__file__).parent / "scripts"
PER_DIAL_TIMEOUT = 10  # seconds per SSH dial attempt
# pulumi/pulumi-command v1.2.1 provider/pkg/provider/remote/connection.go: -1 dials without a
# count; the wait's create/update timeout is the bound instead.
UNLIMITED_DIALS = -1


# What to do when the node's user needs a password for sudo: one text for both scripts that
# refuse it (host-identity.sh at preview, node-prepare.sh on the node), which script() writes in.
SUDO_HELP = (
    "Raspberry Pi OS images from 2026-04-13 on ask for the password by default. Either write the "
    'card again with Raspberry Pi Imager and tick "Enable passwordless sudo" (OS customisation, '
    'the step "Customisation: Choose username"), or on the node run once: '
    "sudo raspi-config nonint do_sudo_pass 1"
)
SUDO_HELP_PLACEHOLDER = "@PI_CLUSTER_SUDO_HELP@"


def script(name: str) -> str:
    """The text of a shell script shipped in components/scripts, with SUDO_HELP written in
    (node-prepare.sh takes no environment, so the text cannot come as a parameter)."""
    return (SCRIPTS / name).read_text().replace(SUDO_HELP_PLACEHOLDER, shlex.quote(SUDO_HELP))


@dataclass(frozen=True)
class K3sClusterArgs:
    settings: Settings
    ssh_private_key: pulumi.Output[str]


def server_config(settings: Settings) -> str:
    """The server's /etc/rancher/k3s/config.yaml: every flag in one reviewed file. Keys are
    K3s flag names (k3s-io/k3s pkg/cli/cmds: node-name is NodeNameFlag, shared by agents)."""
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
            # Without it the node registers as its hostname (Imager's default is the same on
            # every card), and the labels step waits for a node name that never appears.
            "node-name": server.name,
        }
    )
    return yaml.safe_dump(config, sort_keys=True)


def agent_config(node: Node) -> str:
    """An agent's /etc/rancher/k3s/config.yaml (the server and token come from the installer)."""
    return yaml.safe_dump({"node-ip": node.address, "node-name": node.name}, sort_keys=True)


def rewrite_kubeconfig(raw: str, address: str) -> str:
    """The kubeconfig k3s writes points at 127.0.0.1; clients need the server's address. Parsed,
    so a different layout or port cannot slip through a string replace unnoticed."""
    config = yaml.safe_load(raw)
    clusters = config.get("clusters") if isinstance(config, dict) else None
    if not clusters:
        raise ValueError("the server's kubeconfig has no clusters")
    for entry in clusters:
        entry["cluster"]["server"] = f"https://{address}:6443"
    return yaml.safe_dump(config, sort_keys=False)


def node_labels(node: Node) -> str:
    """``key=value`` lines for node-labels.sh, sorted so the environment is stable."""
    return "\n".join(f"{k}={v}" for k, v in sorted(node.labels.items()))


def node_taints(node: Node) -> str:
    """``key=value:Effect`` lines for node-labels.sh; ``key:Effect`` for a taint without a value,
    the form the script reads back from the node."""
    return "\n".join(
        f"{t.key}={t.value}:{t.effect}" if t.value else f"{t.key}:{t.effect}"
        for t in sorted(node.taints, key=lambda t: (t.key, t.effect))
    )


def cluster_identifier(settings: Settings) -> str:
    """The provider's identity: pulumi-kubernetes replaces the provider (and with it every
    Kubernetes resource) only when this changes, instead of whenever the kubeconfig is unknown
    at preview, as on a K3s upgrade (pulumi/pulumi-kubernetes provider/pkg/provider/provider.go
    DiffConfig, clusterIdentifier since 4.16.0). A rebuilt server keeps it: the guide's rebuild
    refreshes state instead of replacing through a provider that can no longer log in. Named
    from settings (the stack's domain and server), never from the stack name."""
    return f"pi-cluster/{settings.domain}/{settings.server.name}"


# -- what each script gets (the component and the script tests use the same functions) ---------


def identity_env(node: Node) -> dict[str, str]:
    """host-identity.sh (runs locally; the private key goes in on stdin)."""
    return {
        "PI_CLUSTER_NODE": node.name,
        "PI_CLUSTER_HOST": node.address,
        "PI_CLUSTER_USER": node.ssh_user,
        "PI_CLUSTER_HOST_KEY": node.host_key_line or "",
    }


def wait_env(node: Node, prepared: Any) -> dict[str, Any]:
    """node-wait.sh: ``prepared`` is what node-prepare.sh printed."""
    return {"PI_CLUSTER_NODE": node.name, "PI_CLUSTER_PREPARED": prepared}


def dns_env(node: Node) -> dict[str, str]:
    """node-dns.sh: static resolvers, or auto (back to DHCP) when staticDns is off."""
    return {
        "PI_CLUSTER_NODE": node.name,
        "PI_CLUSTER_NM_DEVICE": node.nm_device,
        "PI_CLUSTER_NM_CONNECTION": node.nm_connection or "",
        "PI_CLUSTER_DNS_SERVERS": " ".join(node.dns_resolvers),
        "PI_CLUSTER_DNS_MODE": "static" if node.static_dns else "auto",
    }


def _install_common(settings: Settings, node: Node) -> dict[str, str]:
    k3s = settings.k3s
    return {
        "PI_CLUSTER_NODE": node.name,
        "INSTALL_K3S_VERSION": k3s.version,
        "PI_CLUSTER_INSTALLER_URL": k3s.installer(),
        "PI_CLUSTER_INSTALLER_SHA256": k3s.installer_sha256,
        "PI_CLUSTER_START_SECONDS": str(k3s.start_timeout_seconds),
    }


def install_env(settings: Settings) -> dict[str, str]:
    """k3s-install.sh on the server."""
    return {
        **_install_common(settings, settings.server),
        "PI_CLUSTER_ROLE": "server",
        "PI_CLUSTER_K3S_CONFIG": server_config(settings),
        "PI_CLUSTER_WAIT_SECONDS": str(settings.k3s.ready_timeout_seconds),
    }


def join_env(settings: Settings, agent: Node, token: Any) -> dict[str, Any]:
    """k3s-install.sh on an agent; ``token`` is the server's join token (a secret Output)."""
    return {
        **_install_common(settings, agent),
        "PI_CLUSTER_ROLE": "agent",
        "PI_CLUSTER_K3S_CONFIG": agent_config(agent),
        "K3S_URL": f"https://{settings.server.address}:6443",
        "K3S_TOKEN": token,
    }


def read_env(what: str) -> dict[str, str]:
    """k3s-read.sh on the server: ``kubeconfig`` or ``token``."""
    return {"PI_CLUSTER_FILE": what}


def labels_env(settings: Settings, node: Node) -> dict[str, str]:
    """node-labels.sh (on the server) for ``node``."""
    return {
        "PI_CLUSTER_NODE": node.name,
        "PI_CLUSTER_LABELS": node_labels(node),
        "PI_CLUSTER_TAINTS": node_taints(node),
        "PI_CLUSTER_WAIT_SECONDS": str(settings.k3s.ready_timeout_seconds),
    }


def drain_env(settings: Settings, agent: Node, agent_id: Any) -> dict[str, Any]:
    """node-remove.sh's drain (on the server): the agent's machine-id it was created for (the
    server's own comes with every command, host_env)."""
    return {
        "PI_CLUSTER_STEP": "drain",
        "PI_CLUSTER_NODE": agent.name,
        "PI_CLUSTER_NODE_ID": agent_id,
        "PI_CLUSTER_WAIT_SECONDS": str(settings.k3s.drain_timeout_seconds),
    }


def uninstall_env(settings: Settings, node: Node) -> dict[str, Any]:
    """node-remove.sh's uninstall (on the node), as allowed by the settings."""
    server = node.role == "server"
    allow = settings.k3s.allow_server_wipe if server else settings.k3s.allow_uninstall
    return {
        "PI_CLUSTER_STEP": "uninstall",
        "PI_CLUSTER_NODE": node.name,
        "PI_CLUSTER_UNINSTALLER": "k3s-uninstall.sh" if server else "k3s-agent-uninstall.sh",
        "PI_CLUSTER_ALLOW": "yes" if allow else "no",
    }


def host_env(environment: dict[str, Any], host_id: Any) -> dict[str, Any]:
    """What a command on a host gets: its script's parameters and the machine-id of the host
    it runs on (PI_CLUSTER_HOST_ID), the one place that identity is added."""
    return {**environment, "PI_CLUSTER_HOST_ID": host_id}


def kubernetes_provider(
    name: str,
    settings: Settings,
    kubeconfig: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> k8s.Provider:
    """The one Kubernetes provider of the stack, whichever way the cluster came: server-side
    apply, the settings' cluster identity, and the plugin version the stack pins (setting
    kubernetesPluginVersion; unset, the engine runs the SDK's own version)."""
    return k8s.Provider(
        name,
        kubeconfig=kubeconfig,
        enable_server_side_apply=True,
        cluster_identifier=cluster_identifier(settings),
        opts=pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(version=settings.kubernetes_plugin_version)
        ),
    )


@dataclass(frozen=True)
class ExistingClusterArgs:
    settings: Settings
    kubeconfig: pulumi.Output[str]  # the stack secret `kubeconfig`


class ExistingCluster(pulumi.ComponentResource):
    """A cluster that already runs: the provider from its kubeconfig (a stack secret), nothing
    bootstrapped. The stack's ``nodes`` must describe it (names, labels, taints as the nodes
    have them): placement and the capacity proof read them; this component changes no node."""

    kubeconfig: pulumi.Output[str]
    provider: k8s.Provider

    def __init__(self, name: str, args: ExistingClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pi-cluster:cluster:ExistingCluster", name, None, opts)
        self.kubeconfig = pulumi.Output.secret(args.kubeconfig)
        self.provider = kubernetes_provider(
            f"{name}-provider", args.settings, self.kubeconfig, pulumi.ResourceOptions(parent=self)
        )
        self.register_outputs({"kubeconfig": self.kubeconfig})


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

        for node in settings.nodes:
            if node.skip_host_key_check:
                pulumi.log.warn(
                    f"node {node.name}: SSH host key not checked ({node.skip_host_key_check}); "
                    f"record it with `ssh-keyscan -t ed25519 {node.address}` as hostKey",
                    self,
                )
        self._ids = {n.name: self._identity(n) for n in settings.nodes}
        ready = {n.name: self._prepare(n, settings) for n in settings.nodes}

        # Server: install, then read the join token and the kubeconfig as secrets.
        install = self._command(
            server,
            "install",
            "k3s-install.sh",
            install_env(settings),
            depends_on=ready[server.name],
            triggers=[k3s.version],
        )
        token = self._read(server, "token", install)
        kubeconfig = self._read(server, "kubeconfig", install)

        # Server wipe on destroy only when allowed; drains run before it (they depend on it).
        server_guard = self._uninstall_guard(server, settings, install)
        joined: dict[str, pulumi.Resource] = {server.name: install}
        for agent in settings.agents:
            join = self._command(
                agent,
                "join",
                "k3s-install.sh",
                join_env(settings, agent, pulumi.Output.secret(token.stdout)),
                depends_on=[*ready[agent.name], install],
                triggers=[k3s.version],
            )
            joined[agent.name] = join
            guard = self._uninstall_guard(agent, settings, join)
            # Runs on the server only: removing a dead agent never needs the agent.
            self._command(
                server,
                "drain",
                None,
                drain_env(settings, agent, self._ids[agent.name]),
                depends_on=[join, guard, server_guard],
                delete=script("node-remove.sh"),
                resource_name=f"{name}-{agent.name}-drain",
            )

        labels = [
            self._command(
                server,
                "labels",
                "node-labels.sh",
                # A new card under this name registers a new Node object: label it again.
                {**labels_env(settings, node), "PI_CLUSTER_NODE_ID": self._ids[node.name]},
                # The server's own labels wait for its install; an agent's for its join too.
                depends_on=[install] if node.name == server.name else [joined[node.name], install],
                resource_name=f"{name}-{node.name}-labels",  # runs on the server, named for the node
            )
            for node in settings.nodes
        ]

        self.kubeconfig = pulumi.Output.secret(
            kubeconfig.stdout.apply(lambda raw: rewrite_kubeconfig(raw, server.address))
        )
        self.provider = kubernetes_provider(
            f"{name}-provider",
            settings,
            self.kubeconfig,
            pulumi.ResourceOptions(parent=self, depends_on=labels),
        )
        self.register_outputs({"kubeconfig": self.kubeconfig})

    # -- steps -------------------------------------------------------------------------------

    def _identity(self, node: Node) -> pulumi.Output[str]:
        """The node's /etc/machine-id, read on every preview and up (host-identity.sh). Not a
        secret; the invoke's result is marked secret only because the key goes in on stdin."""
        result = command.local.run_output(
            command=script("host-identity.sh"),
            interpreter=["bash", "-c"],
            environment=identity_env(node),
            stdin=self._key,
            add_previous_output_in_env=False,
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        return pulumi.Output.unsecret(result.stdout)

    def _prepare(self, node: Node, settings: Settings) -> list[pulumi.Resource]:
        """Sudo, sshd, memory cgroup, Pi 5 pages and swap; the wait for SSH after a reboot; DNS."""
        ident = self._ids[node.name]
        # The first command takes no environment (sshd does not accept it yet): the identity is
        # its trigger, so a new card replaces it (it has no delete step to run on replacement).
        prepare = self._command(node, "prepare", "node-prepare.sh", {}, triggers=[ident], identified=False)
        # The wait is the dial, retried without a count and bounded in seconds by the command's
        # timeout; node-wait.sh then checks the node came back (a new boot id if prepare asked
        # for a reboot) as K3s needs it.
        bound = f"{settings.k3s.reboot_timeout_seconds}s"
        wait = self._command(
            node,
            "wait",
            "node-wait.sh",
            wait_env(node, prepare.stdout),
            depends_on=[prepare],
            triggers=[prepare.stdout],
            dial_error_limit=UNLIMITED_DIALS,
            timeouts=pulumi.CustomTimeouts(create=bound, update=bound),
        )
        # Always present, with no delete step (removing a node must not need the node): static,
        # or auto, which hands DNS back to DHCP on a node that had it static before.
        dns = self._command(
            node,
            "dns",
            "node-dns.sh",
            dns_env(node),
            depends_on=[wait],
        )
        return [prepare, wait, dns]

    def _read(self, server: Node, what: str, install: command.remote.Command) -> command.remote.Command:
        """A server file as a secret: no logging, stdout marked secret."""
        return self._command(
            server,
            what,
            "k3s-read.sh",
            read_env(what),
            depends_on=[install],
            triggers=[install.stdout],
            logging=command.remote.Logging.NONE,
            secret_stdout=True,
        )

    def _uninstall_guard(
        self, node: Node, settings: Settings, installed: pulumi.Resource
    ) -> command.remote.Command:
        """A command with only a delete step: uninstalls K3s from the host when it is deleted,
        if the setting allowed it when last applied (toggling the setting is an update, never
        a delete, so turning it off cannot trigger an uninstall). While not allowed it has no
        delete step at all, so deleting it never dials the host (a dead node can be removed)."""
        env = uninstall_env(settings, node)
        return self._command(
            node,
            "uninstall",
            None,
            env,
            depends_on=[installed],
            delete=script("node-remove.sh") if env["PI_CLUSTER_ALLOW"] == "yes" else None,
        )

    def _command(
        self,
        node: Node,
        step: str,
        script_name: str | None,
        environment: dict[str, Any],
        *,
        depends_on: list[pulumi.Resource] | None = None,
        triggers: list[Any] | None = None,
        delete: str | None = None,
        resource_name: str | None = None,
        logging: command.remote.Logging | None = None,
        secret_stdout: bool = False,
        dial_error_limit: int | None = None,
        timeouts: pulumi.CustomTimeouts | None = None,
        identified: bool = True,
    ) -> command.remote.Command:
        """One remote command on ``node``; every command checks the host key and never gets its
        previous output in its environment. Its environment carries the host's identity
        (PI_CLUSTER_HOST_ID), so a new card under the address is an update that runs the
        command again: an update, not a replacement, because a replacement would also run the
        old command's delete step (a drain, a DNS reset) at the end of the deployment."""
        if identified:
            environment = host_env(environment, self._ids[node.name])
        return command.remote.Command(
            resource_name or f"{self._name}-{node.name}-{step}",
            connection=self._connection(node, dial_error_limit=dial_error_limit),
            create=script(script_name) if script_name else None,
            delete=delete,
            environment=environment or None,
            triggers=triggers,
            logging=logging,
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=depends_on or [],
                custom_timeouts=timeouts,
                additional_secret_outputs=["stdout"] if secret_stdout else None,
            ),
        )

    def _connection(
        self, node: Node, *, dial_error_limit: int | None = None
    ) -> command.remote.ConnectionArgs:
        return command.remote.ConnectionArgs(
            host=node.address,
            user=node.ssh_user,
            private_key=self._key,
            host_key=node.host_key_line,
            dial_error_limit=dial_error_limit,
            per_dial_timeout=PER_DIAL_TIMEOUT,
        )
