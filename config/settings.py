"""The one typed settings model of the stack, loaded from ``pulumi.Config`` and validated whole
before any resource is registered.

Keys live in the ``pi-cluster`` config namespace and are camelCase, as users write them in
``Pulumi.<stack>.yaml``. Secrets are never part of this model: they are read with
``require_secret`` into :class:`StackSecrets` and stay Pulumi secrets end to end.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
from pydantic import Field, ValidationError, model_validator

from config.types import (
    Chart,
    Cidr,
    Cpu,
    DnsLabel,
    Domain,
    IPv4,
    K3sVersion,
    LabelKey,
    LabelValue,
    Memory,
    Model,
    Resources,
    cpu_millis,
    memory_bytes,
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


class K3s(Model):
    version: K3sVersion
    cluster_cidr: Cidr = "10.42.0.0/16"
    service_cidr: Cidr = "10.43.0.0/16"


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


class Reserve(Model):
    """CPU and memory a node keeps for k3s, the container runtime and the OS."""

    cpu: Cpu
    memory: Memory


class LimitRangeDefaults(Model):
    """Defaults the LimitRange gives a container that sets no resources of its own."""

    cpu_request: Cpu = "50m"
    memory_request: Memory = "64Mi"
    memory_limit: Memory = "256Mi"


class Guardrails(Model):
    """Capacity proof, NetworkPolicies, quotas."""

    # Per node class (hardware.model): what k3s and the OS keep for themselves.
    reserve: dict[Literal["pi5", "pi4", "pi3", "vm"], Reserve]
    # Warn when a node's free CPU or memory falls under this fraction of its allocatable.
    headroom: float = Field(default=0.25, ge=0, lt=1)
    # Namespace ResourceQuotas: (requests of the namespace + its largest pod) x (1 + this).
    quota_headroom: float = Field(default=0.5, ge=0, le=10)
    limit_range: LimitRangeDefaults = Field(default_factory=LimitRangeDefaults)
    # Who may reach route backends and metrics ports (NetworkPolicy sources).
    ingress_namespace: DnsLabel = "ingress-nginx"
    ingress_selector: dict[LabelKey, LabelValue] = Field(
        default_factory=lambda: {"app.kubernetes.io/name": "ingress-nginx"}
    )
    monitoring_namespace: DnsLabel = "monitoring"
    prometheus_selector: dict[LabelKey, LabelValue] = Field(
        default_factory=lambda: {"app.kubernetes.io/name": "prometheus"}
    )

    def reserve_for(self, node: Node) -> Reserve:
        return self.reserve[node.hardware.model]


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
    guardrails: Guardrails

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
            f"{len(servers)} ({', '.join(servers) or 'none'})"
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
    for i, n in enumerate(s.nodes):
        reserve = s.guardrails.reserve.get(n.hardware.model)
        if reserve is None:
            problems.append(
                f"{NAMESPACE}:guardrails.reserve: no reserve for node class {n.hardware.model!r} "
                f"(node {n.name!r}); add guardrails.reserve.{n.hardware.model}"
            )
        elif (
            memory_bytes(reserve.memory) >= memory_bytes(n.hardware.memory)
            or cpu_millis(reserve.cpu) >= n.hardware.cores * 1000
        ):
            problems.append(
                f"{NAMESPACE}:guardrails.reserve.{n.hardware.model}: reserve cpu {reserve.cpu}, memory "
                f"{reserve.memory} leaves nothing of node {n.name!r} ({n.hardware.cores} cores, "
                f"{n.hardware.memory}) (nodes[{i}])"
            )
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
