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

from config.lists import adlist_problems, allowlist_problems
from config.types import (
    Chart,
    Cidr,
    DnsLabel,
    Domain,
    Image,
    IPv4,
    K3sVersion,
    LabelKey,
    LabelValue,
    Memory,
    Model,
    Resources,
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


class Placement(Model):
    """Which node runs each pinned workload (node names from `nodes`)."""

    pihole: DnsLabel
    unbound: DnsLabel


MiB = 2**20


@dataclass(frozen=True)
class UnboundSizing:
    """Cache sizes and threads for unbound.conf, derived from the container's memory limit."""

    threads: int
    slabs: int
    msg_cache: int  # bytes
    rrset_cache: int
    key_cache: int
    neg_cache: int
    estimated_peak: int  # bytes the process may reach with full caches

    def mib(self, size: int) -> str:
        return f"{size // MiB}m"


class UnboundSettings(Model):
    """The recursive resolver. Caches are sized from ``resources.memoryLimit``, not set by hand."""

    image: Image
    resources: Resources
    threads: int = Field(default=2, ge=1, le=16)
    verbosity: int = Field(default=1, ge=0, le=5)
    # Fixed memory beside the caches: the daemon, libraries, buffers, and per worker thread.
    base_overhead: Memory = "24Mi"
    thread_overhead: Memory = "8Mi"
    # Caches use more memory than their configured size (index structures, malloc slack).
    cache_overhead_factor: float = Field(default=2.0, ge=1.0, le=4.0)

    def sizing(self) -> UnboundSizing:
        """Split what the limit leaves after fixed overhead across the caches (msg:rrset:key:neg
        = 4:8:2:1, rrset twice msg as Unbound's docs advise). Raises ValueError if nothing fits."""
        limit = memory_bytes(self.resources.memory_limit)
        fixed = memory_bytes(self.base_overhead) + self.threads * memory_bytes(self.thread_overhead)
        budget = int((limit - fixed) / self.cache_overhead_factor)
        unit = budget // 15 // MiB * MiB  # whole MiB per share
        if unit < MiB:
            raise ValueError(
                f"memoryLimit {self.resources.memory_limit} leaves no room for caches after "
                f"{fixed // MiB}Mi of fixed overhead for {self.threads} thread(s); raise it to at "
                f"least {(fixed + int(15 * MiB * self.cache_overhead_factor)) // MiB + 1}Mi"
            )
        slabs = 1
        while slabs < self.threads:
            slabs *= 2
        msg, rrset, key, neg = 4 * unit, 8 * unit, 2 * unit, unit
        peak = fixed + int((msg + rrset + key + neg) * self.cache_overhead_factor)
        return UnboundSizing(self.threads, slabs, msg, rrset, key, neg, peak)


class PiholeSettings(Model):
    image: Image
    resources: Resources
    # DHCP from Pi-hole needs NET_ADMIN and NET_RAW; off by default (the router serves DHCP).
    dhcp: bool = False


class ExporterSettings(Model):
    image: Image
    resources: Resources
    scrape_interval: str = Field(default="30s", pattern=r"^[0-9]+(s|m)$")


class ReconcilerSettings(Model):
    """The Job that makes Pi-hole's block lists and allowlist match the data files."""

    resources: Resources
    attempts: int = Field(default=5, ge=1, le=20)  # per API request
    timeout_seconds: int = Field(default=20, ge=1, le=300)  # per API request
    gravity_timeout_seconds: int = Field(default=900, ge=30, le=3600)


class DnsSettings(Model):
    """Pi-hole, Unbound, the exporter and the list reconciler (namespace ``pihole``)."""

    pihole: PiholeSettings
    unbound: UnboundSettings
    exporter: ExporterSettings
    reconciler: ReconcilerSettings
    # 1Password "item/field" holding Pi-hole's admin password (ExternalSecret pihole-secret).
    password_ref: str = Field(pattern=r"^[^/]+/[^/]+$")
    adlists_file: str = "config/adlists.txt"
    allowlist_file: str = "config/allowlist.txt"

    @model_validator(mode="after")
    def _files_valid(self) -> DnsSettings:
        problems = adlist_problems(self.adlists_file)[1] + allowlist_problems(self.allowlist_file)[1]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def adlists(self) -> list[str]:
        return adlist_problems(self.adlists_file)[0]

    @property
    def allowlist(self) -> list[str]:
        return allowlist_problems(self.allowlist_file)[0]


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
    dns: DnsSettings

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
    problems += _dns_problems(s)
    for k3s_net in (s.k3s.cluster_cidr, s.k3s.service_cidr):
        if ipaddress.IPv4Network(k3s_net).overlaps(lan):
            problems.append(f"{NAMESPACE}:k3s: network {k3s_net} overlaps lanCidr {s.lan_cidr}")
    return problems


def _dns_problems(s: Settings) -> list[str]:
    """Unbound must fit its node: threads within its cores, memory within half its RAM."""
    problems: list[str] = []
    unbound = s.dns.unbound
    try:
        unbound.sizing()
    except ValueError as err:
        problems.append(f"{NAMESPACE}:dns.unbound.resources.memoryLimit: {err}")
    node = next((n for n in s.nodes if n.name == s.placement.unbound), None)
    if node is None:
        return problems
    if unbound.threads > node.hardware.cores:
        problems.append(
            f"{NAMESPACE}:dns.unbound.threads: {unbound.threads} threads on node {node.name!r}, which "
            f"has {node.hardware.cores} cores"
        )
    half = memory_bytes(node.hardware.memory) // 2
    if memory_bytes(unbound.resources.memory_limit) > half:
        problems.append(
            f"{NAMESPACE}:dns.unbound.resources.memoryLimit: {unbound.resources.memory_limit} is more "
            f"than half of node {node.name!r}'s {node.hardware.memory}"
        )
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
