"""The one typed settings model of the stack, loaded from ``pulumi.Config`` and validated whole
before any resource is registered.

Keys live in the ``pi-cluster`` config namespace and are camelCase, as users write them in
``Pulumi.<stack>.yaml``. Secrets are never part of this model: they are read with
``require_secret`` into :class:`StackSecrets` and stay Pulumi secrets end to end.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
from pydantic import Field, ValidationError, model_validator

from config.types import (
    Chart,
    Cidr,
    DnsLabel,
    Domain,
    IPv4,
    K3sVersion,
    LabelKey,
    LabelValue,
    Memory,
    Model,
    Resources,
)

NAMESPACE = "pi-cluster"

# Config keys that must be set with `pulumi config set --secret`.
SECRET_KEYS: dict[str, str] = {
    "sshPrivateKey": "private SSH key that reaches every node (the public half in authorized_keys)",
    "onepasswordToken": "1Password service-account token for External Secrets",
    "cloudflareApiToken": "Cloudflare API token with Zone:DNS:Edit on the zone",
    "cloudflareZoneId": "Cloudflare zone id of the parent domain",
}


class SettingsError(pulumi.RunError):
    """Bad stack configuration; Pulumi prints the message without a traceback."""


class Hardware(Model):
    """What a node has; capacity checks and placement reason about it."""

    model: Literal["pi5", "pi4", "pi3", "vm"]
    cores: int = Field(gt=0, le=256)
    memory: Memory


class Taint(Model):
    key: LabelKey
    value: LabelValue = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class Node(Model):
    name: DnsLabel
    address: IPv4
    role: Literal["server", "agent"]
    hardware: Hardware
    ssh_user: str = Field(default="pi", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list)
    # Static resolvers so the node resolves image registries even while Pi-hole is down
    # (ARCHITECTURE.md, "DNS Resilience"). Agents pull images too, so it is on by default.
    static_dns: bool = True
    dns_resolvers: list[IPv4] = Field(default_factory=lambda: ["1.1.1.1", "8.8.8.8"], min_length=1)
    nm_connection: str = Field(default="Wired connection 1", pattern=r"^[^\x00-\x1f'\\]{1,64}$")


# config.yaml keys the cluster component owns; extraServerConfig may not override them.
MANAGED_SERVER_KEYS = frozenset(
    {"disable", "tls-san", "write-kubeconfig-mode", "node-ip", "cluster-cidr", "service-cidr", "token"}
)
ConfigValue = str | int | bool | list[str]


class K3s(Model):
    version: K3sVersion
    cluster_cidr: Cidr = "10.42.0.0/16"
    service_cidr: Cidr = "10.43.0.0/16"
    # More server flags, written into /etc/rancher/k3s/config.yaml next to the managed ones.
    extra_server_config: dict[str, ConfigValue] = Field(default_factory=dict)
    installer_url: str = Field(default="https://get.k3s.io", pattern=r"^https://[^\s'\"]+$")
    # Removing an agent from `nodes` always drains and deletes its Kubernetes node; k3s is
    # uninstalled from the host only when this is true.
    allow_uninstall: bool = False
    # Destroying the stack leaves the server's K3s (and its data) alone unless this is true.
    allow_server_wipe: bool = False
    # Upper bound on waiting for a node to answer SSH after its reboot.
    reboot_timeout_seconds: int = Field(default=300, ge=30, le=3600)
    # Upper bound on waiting for K3s files and Kubernetes nodes to appear.
    ready_timeout_seconds: int = Field(default=180, ge=10, le=3600)


class LanDevice(Model):
    """A device on the LAN that the cluster reaches by address (NAS, controller)."""

    name: DnsLabel
    address: IPv4


class OnePassword(Model):
    vault: str = Field(min_length=1)
    # Optional prefix on item names so two stacks sharing one vault never share an item.
    item_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9-]*$")


class SecretsSettings(Model):
    """External Secrets Operator and how often ExternalSecrets re-read 1Password."""

    chart: Chart
    resources: Resources
    # 1Password rate-limits: once a day unless a secret says otherwise.
    refresh_interval: str = Field(default="24h", pattern=r"^([0-9]+(h|m|s))+$")


class Placement(Model):
    """Which node runs each pinned workload (node names from `nodes`)."""

    pihole: DnsLabel
    unbound: DnsLabel


class Settings(Model):
    """Everything the program reads from the stack configuration."""

    domain: Domain
    timezone: str = Field(pattern=r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$")
    lan_cidr: Cidr
    nodes: list[Node] = Field(min_length=1)
    k3s: K3s
    lan_devices: list[LanDevice] = Field(default_factory=list)
    onepassword: OnePassword
    placement: Placement
    secrets: SecretsSettings

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        problems = consistency_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def server(self) -> Node:
        return next(n for n in self.nodes if n.role == "server")

    @property
    def agents(self) -> list[Node]:
        return [n for n in self.nodes if n.role == "agent"]

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def device(self, name: str) -> LanDevice:
        return next(d for d in self.lan_devices if d.name == name)


def _duplicates(values: list[str]) -> list[str]:
    seen: set[str] = set()
    return sorted({v for v in values if v in seen or seen.add(v)})  # type: ignore[func-returns-value]


def consistency_problems(s: Settings) -> list[str]:
    """Rules that span keys; each message names the key and the bad value."""
    problems: list[str] = []
    servers = [n.name for n in s.nodes if n.role == "server"]
    if len(servers) != 1:
        problems.append(
            f"{NAMESPACE}:nodes: exactly one node must have role 'server', found "
            f"{len(servers)} ({', '.join(servers) or 'none'}) among nodes "
            f"{', '.join(n.name for n in s.nodes)}"
        )
    for dup in _duplicates([n.name for n in s.nodes]):
        problems.append(f"{NAMESPACE}:nodes: duplicate node name {dup!r}")
    for dup in _duplicates([n.address for n in s.nodes]):
        problems.append(f"{NAMESPACE}:nodes: duplicate node address {dup!r}")
    lan = ipaddress.IPv4Network(s.lan_cidr)
    for i, n in enumerate(s.nodes):
        if ipaddress.IPv4Address(n.address) not in lan:
            problems.append(
                f"{NAMESPACE}:nodes[{i}].address: {n.address!r} of node {n.name!r} is outside "
                f"lanCidr {s.lan_cidr}"
            )
    for i, d in enumerate(s.lan_devices):
        if ipaddress.IPv4Address(d.address) not in lan:
            problems.append(
                f"{NAMESPACE}:lanDevices[{i}].address: {d.address!r} of device {d.name!r} is "
                f"outside lanCidr {s.lan_cidr}"
            )
    for dup in _duplicates([d.name for d in s.lan_devices]):
        problems.append(f"{NAMESPACE}:lanDevices: duplicate device name {dup!r}")
    names = {n.name for n in s.nodes}
    for workload, node in s.placement.model_dump(by_alias=True).items():
        if node is not None and node not in names:
            problems.append(
                f"{NAMESPACE}:placement.{workload}: workload {workload!r} is placed on node "
                f"{node!r}, which is not in nodes ({', '.join(sorted(names))})"
            )
    for key in sorted(s.k3s.extra_server_config):
        if key in MANAGED_SERVER_KEYS:
            problems.append(
                f"{NAMESPACE}:k3s.extraServerConfig.{key}: {key!r} is set by the cluster component "
                f"and cannot be overridden"
            )
        elif not re.match(r"^[a-z0-9][a-z0-9-]*$", key):
            problems.append(f"{NAMESPACE}:k3s.extraServerConfig: {key!r} is not a K3s flag name")
    for k3s_net in (s.k3s.cluster_cidr, s.k3s.service_cidr):
        if ipaddress.IPv4Network(k3s_net).overlaps(lan):
            problems.append(f"{NAMESPACE}:k3s: network {k3s_net} overlaps lanCidr {s.lan_cidr}")
    return problems


@dataclass(frozen=True)
class StackSecrets:
    """The stack's secret config values, as Pulumi secret Outputs only."""

    ssh_private_key: pulumi.Output[str]
    onepassword_token: pulumi.Output[str]
    cloudflare_api_token: pulumi.Output[str]
    cloudflare_zone_id: pulumi.Output[str]


def _node_hint(loc: tuple[Any, ...], raw: dict[str, Any]) -> str:
    """ " (node 'name')" for an error inside nodes[i], so the message names the node."""
    if len(loc) < 2 or loc[0] != "nodes" or not isinstance(loc[1], int):
        return ""
    nodes = raw.get("nodes")
    if not isinstance(nodes, list) or loc[1] >= len(nodes) or not isinstance(nodes[loc[1]], dict):
        return ""
    name = nodes[loc[1]].get("name")
    return f" (node {name!r})" if isinstance(name, str) else ""


def _format_error(err: ValidationError, raw: dict[str, Any]) -> str:
    lines = []
    for e in err.errors():
        loc = e["loc"]
        path = ""
        for part in loc:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        key = f"{NAMESPACE}:{path}" if path else f"{NAMESPACE}"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = f"unknown key (misspelled?) with value {json.dumps(e['input'], default=str)}"
        elif e["type"] == "missing":
            msg = "required key is missing"
        elif "input" in e and e["type"] != "value_error" and not isinstance(e["input"], dict):
            msg = f"{msg} (got {e['input']!r})"
        msg += _node_hint(loc, raw)
        lines.append(f"{key}: {msg}" if not msg.startswith(NAMESPACE) else msg)
    return "invalid stack configuration:\n  " + "\n  ".join(lines)


def parse(raw: dict[str, Any]) -> Settings:
    """Validate plain config values (camelCase keys without namespace) into Settings."""
    try:
        return Settings.model_validate(raw)
    except ValidationError as err:
        raise SettingsError(_format_error(err, raw)) from None


def _config_keys() -> set[str]:
    """Every key set in the stack config, whether set by the engine or by a test."""
    from pulumi.runtime import config as runtime_config

    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    return {k.split(":", 1)[1] for k in keys if k.startswith(f"{NAMESPACE}:")}


def _decode(value: str) -> Any:
    text = value.strip()
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return value
    return value


def load() -> tuple[Settings, StackSecrets]:
    """Read and validate the whole stack configuration; raise SettingsError on any bad value."""
    cfg = pulumi.Config(NAMESPACE)
    keys = _config_keys()
    raw: dict[str, Any] = {}
    problems: list[str] = []
    for key in sorted(keys - set(SECRET_KEYS)):
        value = cfg.get(key)
        if value is not None:
            raw[key] = _decode(value)
    for key in sorted(set(SECRET_KEYS) & keys):
        if not pulumi.runtime.is_config_secret(f"{NAMESPACE}:{key}"):
            problems.append(
                f"{NAMESPACE}:{key}: stored in plain text; set it with `pulumi config set --secret {key}`"
            )
    for key in sorted(set(SECRET_KEYS) - keys):
        problems.append(
            f"{NAMESPACE}:{key}: required secret is missing ({SECRET_KEYS[key]}); set it with "
            f"`pulumi config set --secret {key}`"
        )
    try:
        settings = parse(raw)
    except SettingsError as err:
        problems[:0] = str(err).splitlines()[1:]
        settings = None
    if problems:
        raise SettingsError("invalid stack configuration:\n  " + "\n  ".join(p.strip() for p in problems))
    assert settings is not None
    secrets = StackSecrets(
        ssh_private_key=cfg.require_secret("sshPrivateKey"),
        onepassword_token=cfg.require_secret("onepasswordToken"),
        cloudflare_api_token=cfg.require_secret("cloudflareApiToken"),
        cloudflare_zone_id=cfg.require_secret("cloudflareZoneId"),
    )
    return settings, secrets
