"""The one typed settings model of the stack, loaded from ``pulumi.Config`` and validated whole
before any resource is registered.

Keys live in the ``pi-cluster`` config namespace and are camelCase, as users write them in
``Pulumi.<stack>.yaml``. Secrets are never part of this model: they are read with
``require_secret`` into :class:`StackSecrets` and stay Pulumi secrets end to end.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import pulumi
import yaml
from pydantic import AfterValidator, Field, ValidationError, field_validator, model_validator

from config import chart_mirror
from config.lists import adlist_problems, allowlist_problems
from config.types import (
    AbsPath,
    Chart,
    Cidr,
    Cpu,
    CronSchedule,
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
    Version,
    cpu_millis,
    memory_bytes,
)

NAMESPACE = "pi-cluster"
PROJECT_DIR = Path(__file__).resolve().parent.parent  # where Pulumi.yaml is

# Config keys that must be set with `pulumi config set --secret` (each only when the stack uses
# it: see required_secrets).
SECRET_KEYS: dict[str, str] = {
    "sshPrivateKey": "private SSH key that reaches every node (the public half in authorized_keys)",
    "kubeconfig": "kubeconfig of the running cluster (existingCluster: true)",
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


_HOST_KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ssh-rsa")
_IFACE = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$"


def split_host_key(entry: str) -> tuple[str | None, str, str] | None:
    """(host, type, base64) of one ``ssh-keyscan`` line (``<host> <type> <base64>``) or of an
    authorized_keys-style ``<type> <base64> [comment]``; None when it is neither."""
    parts = entry.split()
    if len(parts) >= 2 and parts[0] in _HOST_KEY_TYPES:
        return None, parts[0], parts[1]
    if len(parts) == 3 and parts[1] in _HOST_KEY_TYPES:
        return parts[0], parts[1], parts[2]
    return None


def host_key_problem(entry: str, address: str) -> str | None:
    """Why ``entry`` is not an SSH host key of ``address``."""
    split = split_host_key(entry)
    if split is None:
        return (
            "is not one host key line '<address> <type> <base64 key>' (what ssh-keyscan prints) "
            f"with a type of {', '.join(_HOST_KEY_TYPES)}"
        )
    host, kind, key = split
    if kind == "ssh-rsa":
        # pulumi-command offers only the recorded key's own type as host key algorithm
        # (pulumi/pulumi-command v1.2.1 provider/pkg/provider/remote/connection.go:
        # HostKeyAlgorithms = []string{publicKey.Type()}); for an RSA key that is "ssh-rsa", the
        # SHA-1 signature, which sshd no longer offers since OpenSSH 8.8 (sshd_config(5) of
        # Debian's openssh-server 1:9.2p1-2+deb12u10: HostKeyAlgorithms default has only
        # rsa-sha2-512,rsa-sha2-256), so every command would fail its handshake.
        return (
            "is an ssh-rsa key, which pulumi-command checks with the SHA-1 ssh-rsa signature that "
            "OpenSSH 8.8 and later (Raspberry Pi OS Bookworm and Trixie) no longer offer; record "
            f"the node's ed25519 key instead: `ssh-keyscan -t ed25519 {address}`"
        )
    # ssh-keyscan names a host on another port as [address]:port.
    names = [re.sub(r"^\[(.*)\]:\d+$", r"\1", n) for n in (host or address).split(",")]
    if address not in names:
        return f"names host {host!r}, not the node's address {address!r}"
    try:
        blob = base64.b64decode(key, validate=True)
    except binascii.Error:
        return "has a key that is not base64"
    if len(blob) < 4 or blob[4 : 4 + int.from_bytes(blob[:4], "big")] != kind.encode():
        return f"has a key blob that is not a {kind} key"
    return None


class Node(Model):
    name: DnsLabel
    address: IPv4
    role: Literal["server", "agent"]
    hardware: Hardware
    ssh_user: str = Field(default="pi", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    # The node's SSH host key, as `ssh-keyscan -t ed25519 <address>` prints it. Every command
    # (pulumi-command's connection.hostKey) and the host identity read check it; without it
    # pulumi-command accepts any host (pulumi/pulumi-command v1.2.1
    # provider/pkg/provider/remote/connection.go: InsecureIgnoreHostKey when hostKey is unset).
    host_key: str | None = None
    # Not checking the host key must be a stated decision: the reason, or leave it unset.
    skip_host_key_check: str | None = Field(default=None, min_length=10)
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list)
    # Static resolvers so the node resolves image registries even while Pi-hole is down
    # (ARCHITECTURE.md, "DNS Resilience"). Agents pull images too, so it is on by default.
    static_dns: bool = True
    dns_resolvers: list[IPv4] = Field(default_factory=lambda: ["1.1.1.1", "8.8.8.8"], min_length=1)
    # NetworkManager connection whose resolvers are set: by default the one active on nmDevice
    # (Bookworm images name it "Wired connection 1", Trixie's netplan "netplan-eth0", the
    # "netplan-<id>" of canonical/netplan 1.1.2 src/nm.c, id eth0 as observed); set
    # nmConnection only to override what the device reports.
    nm_device: str = Field(default="eth0", pattern=_IFACE)
    nm_connection: str | None = Field(default=None, pattern=r"^[^\x00-\x1f'\\]{1,64}$")

    @property
    def host_key_line(self) -> str | None:
        """``<type> <base64>``: the form pulumi-command parses (ssh.ParseAuthorizedKey)."""
        split = split_host_key(self.host_key) if self.host_key else None
        return f"{split[1]} {split[2]}" if split else None


# config.yaml keys the cluster component owns; extraServerConfig may not override them.
MANAGED_SERVER_KEYS = frozenset(
    {
        "disable",
        "tls-san",
        "write-kubeconfig-mode",
        "node-ip",
        "node-name",
        "cluster-cidr",
        "service-cidr",
        "token",
    }
)
ConfigValue = str | int | bool | list[str]


class K3s(Model):
    version: K3sVersion
    cluster_cidr: Cidr = "10.42.0.0/16"
    service_cidr: Cidr = "10.43.0.0/16"
    # More server flags, written into /etc/rancher/k3s/config.yaml next to the managed ones.
    extra_server_config: dict[str, ConfigValue] = Field(default_factory=dict)
    # The installer of this release, pinned by its sha256: by default install.sh at the release's
    # tag in k3s-io/k3s (get.k3s.io serves whatever master holds today). A new version means a
    # new installerSha256; a mismatch stops the install naming both digests.
    installer_url: str | None = Field(default=None, pattern=r"^https://[^\s'\"]+$")
    installer_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    # Removing an agent from `nodes` always drains and deletes its Kubernetes node; k3s is
    # uninstalled from the host only when this is true.
    allow_uninstall: bool = False
    # Destroying the stack leaves the server's K3s (and its data) alone unless this is true.
    allow_server_wipe: bool = False
    # Upper bound on waiting for a node to answer SSH after its reboot (the wait command's
    # create/update timeout; the dial itself retries without a count).
    reboot_timeout_seconds: int = Field(default=300, ge=30, le=3600)
    # Upper bound on waiting for K3s files and Kubernetes nodes to appear.
    ready_timeout_seconds: int = Field(default=180, ge=10, le=3600)
    # Upper bound on `systemctl start/restart` of k3s or k3s-agent: the unit is Type=notify with
    # TimeoutStartSec=0 (k3s-io/k3s install.sh, the file the program downloads at v1.33.6+k3s1,
    # pinned by installerSha256: create_systemd_service_file; read from a stored copy at commit
    # 0136cf25, not from the tag itself), so an agent that cannot register would wait forever;
    # past this the journal is printed and the command fails naming the node.
    start_timeout_seconds: int = Field(default=300, ge=10, le=3600)
    # Upper bound on draining a Ready node that leaves the cluster (a NotReady one is not drained:
    # its pods are force-deleted with the node).
    drain_timeout_seconds: int = Field(default=180, ge=10, le=3600)

    def installer(self) -> str:
        """The installer's URL: the setting, or install.sh at this release's tag."""
        if self.installer_url:
            return self.installer_url
        return f"https://raw.githubusercontent.com/k3s-io/k3s/{self.version.replace('+', '%2B')}/install.sh"


class DeviceRoute(Model):
    """How a LAN device's web UI is published at ``https://<hostPrefix>.<domain>``."""

    host_prefix: DnsLabel
    port: int = Field(gt=0, lt=65536)
    protocol: Literal["http", "https"] = "http"
    health_path: str = Field(default="/", pattern=r"^/")
    group: str = Field(default="Network", min_length=1)
    icon: str = Field(default="mdi-web", min_length=1)


class LanDevice(Model):
    """A device on the LAN that the cluster reaches by address (NAS, controller)."""

    name: DnsLabel
    address: IPv4
    # Set to publish the device's web UI through the ingress (selector-less Service + EndpointSlice).
    route: DeviceRoute | None = None


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
    # Who may reach metrics ports (NetworkPolicy source). The ingress controller's pods come
    # from IngressTls, the only component that knows which controller runs.
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
    # The ingress controller binds hostPort 443 here; the wildcard DNS record points at it.
    ingress: DnsLabel
    jellyfin: DnsLabel
    immich: DnsLabel
    # Where backup jobs run: the node holding the local-path volumes.
    backups: DnsLabel
    # Prometheus, Alertmanager and Grafana (their volumes live on this node's local-path).
    monitoring: DnsLabel
    # Uptime Kuma and AutoKuma (SQLite and sled databases on local-path).
    status: DnsLabel


class ControllerChart(Model):
    """One ingress controller's chart and the resources of its pod."""

    chart: Chart
    resources: Resources
    # ingress-nginx's admission-webhook certificate Jobs (Helm hooks on every install and
    # upgrade; the chart leaves them without requests or limits). Traefik has none.
    admission_jobs: Resources = Field(
        default_factory=lambda: Resources(cpu_request="10m", memory_request="32Mi", memory_limit="64Mi")
    )


class CertManagerSettings(Model):
    chart: Chart
    resources: Resources
    # DNS-01 self checks ask public resolvers only: the LAN's Pi-hole answers the domain locally.
    recursive_nameservers: list[str] = Field(
        default_factory=lambda: ["1.1.1.1:53", "9.9.9.9:53"], min_length=1
    )

    @model_validator(mode="after")
    def _nameservers_are_ip_port(self) -> CertManagerSettings:
        for ns in self.recursive_nameservers:
            host, _, port = ns.rpartition(":")
            try:
                ipaddress.IPv4Address(host)
                ok = port.isdigit() and 0 < int(port) < 65536
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"recursiveNameservers entry {ns!r} is not <IPv4>:<port>")
        return self


class IngressSettings(Model):
    """Ingress controller, cert-manager and Let's Encrypt; which controller runs is one key."""

    controller: Literal["ingress-nginx", "traefik"] = "ingress-nginx"
    issuer: Literal["letsencrypt-prod", "letsencrypt-staging"] = "letsencrypt-prod"
    acme_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[a-z]{2,63}$")
    # 1Password item/field holding the Cloudflare API token cert-manager solves DNS-01 with.
    cloudflare_token_ref: str = Field(default="cloudflare/api-token", pattern=r"^[^/]+/[^/]+$")
    # Certificates of https backends (LAN devices) are self-signed; verify only if they are not.
    verify_https_backends: bool = False
    # The Cloudflare record *.<domain> -> the ingress node. Off: no record and no Cloudflare
    # provider (cloudflareApiToken and cloudflareZoneId are then not needed); cert-manager's
    # DNS-01 token still comes from 1Password (cloudflareTokenRef).
    cloudflare_record: bool = True
    ingress_nginx: ControllerChart
    traefik: ControllerChart
    cert_manager: CertManagerSettings


NfsVersion = Literal["3", "4", "4.1", "4.2"]


class Jellyfin(Model):
    image: Image
    config_size: Memory = "5Gi"
    video_path: AbsPath  # NFS export on the NAS, mounted read-only
    video_size: Memory = "1Ti"
    # Scratch space for transcodes (an emptyDir at <cache>/transcodes): a film's segments.
    transcode_size: Memory = "8Gi"
    resources: Resources

    @field_validator("transcode_size")
    @classmethod
    def _room_for_a_film(cls, value: str) -> str:
        if memory_bytes(value) < 8 * 2**30:
            raise ValueError(f"transcodeSize {value} is less than 8Gi, too small for a film's transcode")
        return value


class ImmichDatabase(Model):
    """Self-managed PostgreSQL with a vector extension (Immich's own image)."""

    image: Image
    # What Immich's DB_VECTOR_EXTENSION says; must be one the image ships.
    vector_extension: Literal["vectorchord", "pgvecto.rs", "pgvector"]
    name: DnsLabel = "immich"
    user: DnsLabel = "immich"
    size: Memory = "5Gi"
    resources: Resources


class Immich(Model):
    chart: Chart
    version: Version  # server image tag, e.g. v2.4.1
    machine_learning: bool = False  # too heavy for a Pi; off unless asked for
    library_path: AbsPath
    library_size: Memory = "1Ti"
    valkey_size: Memory = "1Gi"
    # Plain server environment (non-secret); the DB password comes from 1Password.
    env: dict[str, str] = Field(default_factory=dict)
    # 1Password item/field of the database password.
    db_password_ref: str = Field(pattern=r"^[^/]+/[^/]+$")
    database: ImmichDatabase
    server_resources: Resources
    valkey_resources: Resources


class Media(Model):
    """Jellyfin and Immich on the NAS."""

    nas: DnsLabel  # a lanDevices name
    nfs_version: NfsVersion = "3"
    jellyfin: Jellyfin
    immich: Immich


class BackupImages(Model):
    rsync_image: Image  # ships rsync, ssh and a POSIX shell; nothing is installed at run time
    postgres_client_image: Image  # major version must match the database image
    sqlite_image: Image


class BackupSchedules(Model):
    pvc: CronSchedule = "0 2 * * 0"
    postgres: CronSchedule = "30 2 * * 0"
    restore_drill: CronSchedule = "0 5 * * 0"


class Backups(Model):
    """Weekly copies to the NAS over SSH, and the restore drill that proves them."""

    nas: DnsLabel  # a lanDevices name
    ssh_user: str = Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    ssh_port: int = Field(default=22, gt=0, lt=65536)
    # One known_hosts line for the NAS ("<address> <key type> <base64 key>"): host key checking.
    known_hosts: str
    ssh_key_ref: str = Field(pattern=r"^[^/]+/[^/]+$")  # 1Password item/field of the private key
    volumes_path: AbsPath
    postgres_path: AbsPath
    retention: int = Field(ge=1, le=520)
    local_path_root: AbsPath = "/var/lib/rancher/k3s/storage"
    schedules: BackupSchedules = BackupSchedules()
    images: BackupImages
    # Tables the restore drill expects rows in after restoring the latest dump.
    drill_tables: list[str] = Field(min_length=1)
    resources: Resources


_RETENTION = r"^[0-9]+(ms|s|m|h|d|w|y)$"
_RETENTION_SIZE = re.compile(r"^([0-9]+)(B|KB|MB|GB|TB|PB|KiB|MiB|GiB|TiB)$")
_SIZE_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "PB": 10**15}
_SIZE_UNITS.update({"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40})


def _retention_size(value: str) -> str:
    if not _RETENTION_SIZE.match(value):
        raise ValueError(f"{value!r} is not a Prometheus size such as 2GB")
    return value


def retention_bytes(value: str) -> int:
    match = _RETENTION_SIZE.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a Prometheus size such as 2GB")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


class MonitoringResources(Model):
    """Requests/limits of every workload kube-prometheus-stack runs (subcharts included)."""

    prometheus: Resources
    alertmanager: Resources
    operator: Resources
    config_reloader: Resources
    admission_webhooks: Resources
    grafana: Resources
    grafana_sidecar: Resources
    kube_state_metrics: Resources
    node_exporter: Resources


class MonitoringSettings(Model):
    """kube-prometheus-stack: Prometheus, Alertmanager, Grafana, node-exporter, kube-state-metrics."""

    chart: Chart
    retention: str = Field(default="7d", pattern=_RETENTION)
    retention_size: Annotated[str, AfterValidator(_retention_size)] = "2GB"
    storage_size: Memory = "5Gi"
    grafana_storage_size: Memory = "1Gi"
    resources: MonitoringResources


class StatusResources(Model):
    uptime_kuma: Resources
    autokuma: Resources


class StatusSettings(Model):
    """Uptime Kuma and AutoKuma, which keeps the generated monitors in sync."""

    uptime_kuma_image: Image
    autokuma_image: Image
    storage_size: Memory = "2Gi"
    autokuma_storage_size: Memory = "100Mi"
    # The name the DNS monitors resolve, and where Unbound answers inside the cluster.
    dns_probe_name: Domain = "cloudflare.com"
    unbound_host: Domain = "unbound.pihole.svc.cluster.local"
    interval_seconds: int = Field(default=60, ge=20, le=3600)
    resources: StatusResources


class Weather(Model):
    label: str = Field(min_length=1)
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    units: Literal["metric", "imperial"] = "metric"


class HomepageSettings(Model):
    """The Homepage dashboard; its services are derived from the routes."""

    image: Image
    title: str = Field(default="pi-cluster", min_length=1)
    resources: Resources
    weather: Weather
    # HOMEPAGE_VAR_<NAME> -> 1Password "item/field"; widgets reference {{HOMEPAGE_VAR_<NAME>}}.
    credentials: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _credential_names(self) -> HomepageSettings:
        for var, ref in self.credentials.items():
            if not re.match(r"^HOMEPAGE_VAR_[A-Z0-9_]+$", var):
                raise ValueError(f"credentials: {var!r} is not a HOMEPAGE_VAR_<NAME> variable")
            if ref.count("/") != 1 or not all(ref.split("/")):
                raise ValueError(f"credentials.{var}: {ref!r} is not a 1Password 'item/field' reference")
        return self


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


class DnsInstance(Model):
    """One Pi-hole: the node it runs on (hostNetwork) and the LAN address clients query."""

    node: DnsLabel
    address: IPv4


class DnsSettings(Model):
    """Pi-hole, Unbound, the exporter and the list reconciler (namespace ``pihole``)."""

    # Empty: one Pi-hole on placement.pihole. Otherwise the first is the primary (on
    # placement.pihole), each further entry one more Pi-hole with the same configuration.
    instances: list[DnsInstance] = Field(default_factory=list, max_length=3)
    # Unbound replicas, spread one per node; default 2 with two or more Pi-holes, else 1.
    unbound_replicas: int | None = Field(default=None, ge=1, le=3)
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
    def unbound_count(self) -> int:
        if self.unbound_replicas is not None:
            return self.unbound_replicas
        return 2 if len(self.instances) > 1 else 1

    @property
    def allowlist(self) -> list[str]:
        return allowlist_problems(self.allowlist_file)[0]


def _reason(value: str | None) -> str | None:
    if value is not None and len(value.strip()) < 10:
        raise ValueError(f"{value!r} is not a reason: say in a sentence why (at least 10 characters)")
    return value


# A provider plugin version as `pulumi plugin ls` shows it (semver, no leading v).
_PLUGIN_VERSION = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")


def _plugin_version(value: str | None) -> str | None:
    if value is not None and not _PLUGIN_VERSION.match(value):
        raise ValueError(f"{value!r} is not a plugin version such as 4.25.0")
    return value


class Settings(Model):
    """Everything the program reads from the stack configuration."""

    # The cluster already runs (its kubeconfig is the secret `kubeconfig`): nothing is
    # bootstrapped over SSH, no node is touched; `nodes` still describes the cluster (names,
    # labels, taints, hardware: placement and the capacity proof read them).
    existing_cluster: bool = False
    # A Helm repository on disk (index.yaml + packages, as `helm repo index` writes it): every
    # release installs its chart package from there, sha256 checked against the index at preview.
    # An absolute path, or relative to the project folder.
    chart_mirror: str | None = Field(default=None, min_length=1)
    # Throwaway stacks only (e2e): the reason no stateful volume is protected. Set, it turns
    # `protect` off on every stateful PVC and the NAS PersistentVolumes, and annotates them
    # pi-cluster/ephemeral: <reason> (what the policy pack's stateful-pvc-protected accepts).
    ephemeral_volumes: Annotated[str | None, AfterValidator(_reason)] = None
    # The Kubernetes provider plugin the engine runs (resource option `version` on the provider),
    # for an air-gapped machine with one known plugin installed. Unset: the SDK's own version.
    kubernetes_plugin_version: Annotated[str | None, AfterValidator(_plugin_version)] = None
    domain: Domain
    timezone: str = Field(pattern=r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$")
    lan_cidr: Cidr
    nodes: list[Node] = Field(min_length=1)
    k3s: K3s
    lan_devices: list[LanDevice] = Field(default_factory=list)
    onepassword: OnePassword
    placement: Placement
    secrets: SecretsSettings
    monitoring: MonitoringSettings
    status: StatusSettings
    homepage: HomepageSettings
    ingress: IngressSettings
    # Optional capabilities: leave the section out (as the dev stack does) to build none of it.
    media: Media | None = None
    backups: Backups | None = None
    dns: DnsSettings
    guardrails: Guardrails

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        problems = consistency_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def enabled_media(self) -> Media:
        """The media section, for components that only exist when it is set."""
        if self.media is None:
            raise SettingsError(f"{NAMESPACE}:media: not set, but a media component was built")
        return self.media

    @property
    def enabled_backups(self) -> Backups:
        if self.backups is None:
            raise SettingsError(f"{NAMESPACE}:backups: not set, but the backup component was built")
        return self.backups

    @property
    def server(self) -> Node:
        return next(n for n in self.nodes if n.role == "server")

    @property
    def agents(self) -> list[Node]:
        return [n for n in self.nodes if n.role == "agent"]

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def charts(self) -> dict[str, Chart]:
        """Every chart the stack installs, by its settings key."""
        nginx = self.ingress.controller == "ingress-nginx"
        controller = self.ingress.ingress_nginx if nginx else self.ingress.traefik
        found = {
            "secrets.chart": self.secrets.chart,
            f"ingress.{'ingressNginx' if nginx else 'traefik'}.chart": controller.chart,
            "ingress.certManager.chart": self.ingress.cert_manager.chart,
            "monitoring.chart": self.monitoring.chart,
        }
        if self.media is not None:
            found["media.immich.chart"] = self.media.immich.chart
        return found

    def mirror_folder(self) -> Path | None:
        """chartMirror as an absolute folder (relative to the project folder), or None."""
        if self.chart_mirror is None:
            return None
        path = Path(self.chart_mirror)
        return path if path.is_absolute() else PROJECT_DIR / path

    def chart_source(self, chart: Chart) -> ChartSource:
        """Where a release takes ``chart`` from: its repository, or its package in chartMirror."""
        folder = self.mirror_folder()
        if folder is None:
            return ChartSource(chart.chart, chart.version, chart.repo)
        try:
            package = chart_mirror.package(folder, chart.chart, chart.version)
        except chart_mirror.MirrorError as err:
            raise SettingsError(f"{NAMESPACE}:chartMirror: {err}") from None
        return ChartSource(str(package), chart.version, None)

    def device(self, name: str) -> LanDevice:
        return next(d for d in self.lan_devices if d.name == name)


@dataclass(frozen=True)
class ChartSource:
    """What a Helm release is given: the chart's name in ``repo``, or (repo None) the path of a
    chart package on disk."""

    chart: str
    version: str
    repo: str | None


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
    if not s.existing_cluster:  # nothing dials a node of a running cluster
        problems += _host_key_problems(s)
    for i, d in enumerate(s.lan_devices):
        if ipaddress.IPv4Address(d.address) not in lan:
            problems.append(
                f"{NAMESPACE}:lanDevices[{i}].address: {d.address!r} of device {d.name!r} is "
                f"outside lanCidr {s.lan_cidr}"
            )
    for dup in _duplicates([d.name for d in s.lan_devices]):
        problems.append(f"{NAMESPACE}:lanDevices: duplicate device name {dup!r}")
    for dup in _duplicates([d.route.host_prefix for d in s.lan_devices if d.route]):
        problems.append(
            f"{NAMESPACE}:lanDevices: two devices publish the same host {dup}.{s.domain} "
            f"(route.hostPrefix {dup!r})"
        )
    names = {n.name for n in s.nodes}
    for workload, node in s.placement.model_dump(by_alias=True).items():
        if node is not None and node not in names:
            problems.append(
                f"{NAMESPACE}:placement.{workload}: workload {workload!r} is placed on node "
                f"{node!r}, which is not in nodes ({', '.join(sorted(names))})"
            )
    problems += _dns_problems(s)
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
    m = s.monitoring
    if retention_bytes(m.retention_size) >= memory_bytes(m.storage_size):
        problems.append(
            f"{NAMESPACE}:monitoring.retentionSize: {m.retention_size!r} does not fit in the "
            f"{m.storage_size} volume (storageSize); Prometheus needs headroom for the WAL"
        )
    problems += _media_problems(s)
    problems += _chart_mirror_problems(s)
    return problems


def _chart_mirror_problems(s: Settings) -> list[str]:
    """Every chart the stack installs is in chartMirror, its package the one the index names."""
    folder = s.mirror_folder()
    if folder is None:
        return []
    key = f"{NAMESPACE}:chartMirror"
    try:
        chart_mirror.index_of(folder)
    except chart_mirror.MirrorError as err:
        return [f"{key}: {s.chart_mirror!r}: {err}"]
    problems = []
    for where, chart in s.charts().items():
        try:
            chart_mirror.package(folder, chart.chart, chart.version)
        except chart_mirror.MirrorError as err:
            problems.append(f"{key}: {s.chart_mirror!r}: {err} (chart of {where})")
    return problems


def _host_key_problems(s: Settings) -> list[str]:
    """Every node's host key is checked, or the node says why not (never both, never neither)."""
    problems: list[str] = []
    for i, n in enumerate(s.nodes):
        key = f"{NAMESPACE}:nodes[{i}]"
        if n.host_key is None and n.skip_host_key_check is None:
            problems.append(
                f"{key}.hostKey: required (node {n.name!r}): without it any host answering on "
                f"{n.address} gets the join token; record it with `ssh-keyscan -t ed25519 {n.address}` "
                f"(check the fingerprint on the node's console), or set {key}.skipHostKeyCheck to the reason"
            )
        elif n.host_key is not None and n.skip_host_key_check is not None:
            problems.append(f"{key}.skipHostKeyCheck: node {n.name!r} sets hostKey too; keep one of them")
        elif n.host_key is not None:
            problem = host_key_problem(n.host_key, n.address)
            if problem:
                problems.append(f"{key}.hostKey: {n.host_key!r} {problem} (node {n.name!r})")
    return problems


_KNOWN_HOST = re.compile(
    r"^(\S+) (ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ssh-rsa) ([A-Za-z0-9+/]+=*)$"
)
_TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def image_major(image: str) -> str | None:
    """The PostgreSQL major version in a tag such as ``14.17-bookworm`` or ``14-vectorchord0.4.3``."""
    tag = image.split("@", 1)[0].rpartition(":")[2]
    match = re.match(r"^(\d+)(?:[.-]|$)", tag)
    return match.group(1) if match else None


def _known_host_problem(entry: str, address: str, port: int) -> str | None:
    match = _KNOWN_HOST.match(entry.strip())
    if not match:
        return "is not one known_hosts line '<host> <key type> <base64 key>'"
    hosts = match.group(1).split(",")
    want = address if port == 22 else f"[{address}]:{port}"
    if want not in hosts:
        return f"names {match.group(1)!r}, not the NAS {want!r}"
    try:
        blob = base64.b64decode(match.group(3), validate=True)
    except binascii.Error:
        return "has a key that is not base64"
    if len(blob) < 4 or blob[4 : 4 + int.from_bytes(blob[:4], "big")] != match.group(2).encode():
        return f"has a key blob that is not a {match.group(2)} key"
    return None


def _media_problems(s: Settings) -> list[str]:
    problems: list[str] = []
    devices = {d.name for d in s.lan_devices}
    if s.backups is not None and s.media is None:
        problems.append(
            f"{NAMESPACE}:backups: backups dump Immich's database; they need the media section too"
        )
    nas_keys = [("media.nas", s.media.nas)] if s.media else []
    nas_keys += [("backups.nas", s.backups.nas)] if s.backups else []
    for key, device in nas_keys:
        if device not in devices:
            problems.append(
                f"{NAMESPACE}:{key}: {device!r} is not in lanDevices ({', '.join(sorted(devices)) or 'none'})"
            )
    if s.media is not None:
        db = s.media.immich.database
        tag = db.image.split("@", 1)[0].rpartition(":")[2]
        ships = {"vectorchord": r"vectorchord", "pgvecto.rs": r"pgvectors", "pgvector": r"pgvector(?!s)"}
        if not re.search(rf"(^|-){ships[db.vector_extension]}", tag):
            problems.append(
                f"{NAMESPACE}:media.immich.database.vectorExtension: {db.vector_extension!r} is not in "
                f"the database image {db.image!r}"
            )
        if "DB_PASSWORD" in s.media.immich.env:
            problems.append(
                f"{NAMESPACE}:media.immich.env.DB_PASSWORD: secrets come from 1Password, not settings"
            )
    if s.media is not None and s.backups is not None:
        db = s.media.immich.database
        server, client = image_major(db.image), image_major(s.backups.images.postgres_client_image)
        if server is None or server != client:
            problems.append(
                f"{NAMESPACE}:backups.images.postgresClientImage: major version {client!r} of "
                f"{s.backups.images.postgres_client_image!r} does not match the database image's {server!r}"
            )
    if s.backups is None:
        return problems
    if s.backups.nas in devices:
        problem = _known_host_problem(
            s.backups.known_hosts, s.device(s.backups.nas).address, s.backups.ssh_port
        )
        if problem:
            problems.append(f"{NAMESPACE}:backups.knownHosts: {s.backups.known_hosts!r} {problem}")
    for i, table in enumerate(s.backups.drill_tables):
        if not _TABLE.match(table):
            problems.append(f"{NAMESPACE}:backups.drillTables[{i}]: {table!r} is not a plain table name")
    if s.backups.volumes_path == s.backups.postgres_path:
        problems.append(
            f"{NAMESPACE}:backups.postgresPath: {s.backups.postgres_path!r} must differ from volumesPath "
            "(retention counts dated folders per path)"
        )
    return problems


def _dns_problems(s: Settings) -> list[str]:
    """Unbound must fit its node: threads within its cores, memory within half its RAM."""
    problems: list[str] = []
    unbound = s.dns.unbound
    try:
        unbound.sizing()
    except ValueError as err:
        problems.append(f"{NAMESPACE}:dns.unbound.resources.memoryLimit: {err}")
    problems += _dns_instance_problems(s)
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


def _dns_instance_problems(s: Settings) -> list[str]:
    """Each Pi-hole on its own node, answering on that node's LAN address; primary first."""
    problems: list[str] = []
    nodes = {n.name: n for n in s.nodes}
    lan = ipaddress.ip_network(s.lan_cidr, strict=False)
    seen_nodes: dict[str, int] = {}
    seen_addresses: dict[str, int] = {}
    for i, inst in enumerate(s.dns.instances):
        key = f"{NAMESPACE}:dns.instances[{i}]"
        if inst.node in seen_nodes:
            problems.append(
                f"{key}.node: {inst.node!r} already runs instance {seen_nodes[inst.node]}; "
                "two Pi-holes on one node cannot both bind :53"
            )
        seen_nodes.setdefault(inst.node, i)
        if inst.address in seen_addresses:
            problems.append(
                f"{key}.address: {inst.address} is already the address of instance "
                f"{seen_addresses[inst.address]}"
            )
        seen_addresses.setdefault(inst.address, i)
        if ipaddress.ip_address(inst.address) not in lan:
            problems.append(f"{key}.address: {inst.address} is not on the LAN {s.lan_cidr}")
        node = nodes.get(inst.node)
        if node is None:
            problems.append(f"{key}.node: {inst.node!r} is not in nodes")
        elif node.address != inst.address:
            problems.append(
                f"{key}.address: {inst.address} is not the address of node {inst.node!r} ({node.address}); "
                "Pi-hole runs on the node's network"
            )
    if s.dns.instances and s.dns.instances[0].node != s.placement.pihole:
        problems.append(
            f"{NAMESPACE}:dns.instances[0].node: {s.dns.instances[0].node!r} is not placement.pihole "
            f"{s.placement.pihole!r} (the first instance is the primary)"
        )
    replicas = s.dns.unbound_count
    if replicas > len(s.nodes):
        problems.append(
            f"{NAMESPACE}:dns.unboundReplicas: {replicas} replicas need as many nodes (one per node), "
            f"the stack has {len(s.nodes)}"
        )
    return problems


@dataclass(frozen=True)
class StackSecrets:
    """The stack's secret config values, as Pulumi secret Outputs only; None where the stack
    does not use the key (see :func:`required_secrets`)."""

    onepassword_token: pulumi.Output[str]
    ssh_private_key: pulumi.Output[str] | None = None
    kubeconfig: pulumi.Output[str] | None = None
    cloudflare_api_token: pulumi.Output[str] | None = None
    cloudflare_zone_id: pulumi.Output[str] | None = None

    def require(self, key: str) -> pulumi.Output[str]:
        """The secret of config ``key``; the stack must use it (load() read it)."""
        fields = {
            "sshPrivateKey": self.ssh_private_key,
            "kubeconfig": self.kubeconfig,
            "onepasswordToken": self.onepassword_token,
            "cloudflareApiToken": self.cloudflare_api_token,
            "cloudflareZoneId": self.cloudflare_zone_id,
        }
        value = fields[key]
        if value is None:
            raise SettingsError(f"{NAMESPACE}:{key}: not read, this stack's settings do not use it")
        return value


def required_secrets(settings: Settings) -> set[str]:
    """The secret keys this stack reads: the SSH key to bootstrap nodes, or the kubeconfig of a
    running cluster; the Cloudflare pair only for the wildcard record."""
    keys = {"onepasswordToken", "kubeconfig" if settings.existing_cluster else "sshPrivateKey"}
    if settings.ingress.cloudflare_record:
        keys |= {"cloudflareApiToken", "cloudflareZoneId"}
    return keys


def _required_secrets_of(raw: dict[str, Any]) -> set[str]:
    """required_secrets for a configuration that did not validate, as far as it can tell (so
    a missing secret is reported beside the other problems)."""
    on = {True, "true", "True"}
    ingress = raw.get("ingress")
    record = ingress.get("cloudflareRecord", True) if isinstance(ingress, dict) else True
    keys = {"onepasswordToken", "kubeconfig" if raw.get("existingCluster") in on else "sshPrivateKey"}
    if record not in {False, "false", "False"}:
        keys |= {"cloudflareApiToken", "cloudflareZoneId"}
    return keys


def kubeconfig_problem(text: str) -> str | None:
    """Why ``text`` is not a kubeconfig a client can use (never quoting it: it is a secret)."""
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError:
        return "is not YAML"
    if not isinstance(config, dict) or config.get("kind", "Config") != "Config":
        return "is not a kubeconfig (kind Config)"
    names = {}
    for section in ("clusters", "users", "contexts"):
        entries = config.get(section)
        if not isinstance(entries, list) or not entries:
            return f"has no {section}"
        names[section] = {e.get("name") for e in entries if isinstance(e, dict)}
    current = config.get("current-context")
    if current not in names["contexts"]:
        return f"has no current-context among its contexts ({', '.join(sorted(map(str, names['contexts'])))})"
    context = next(e for e in config["contexts"] if isinstance(e, dict) and e.get("name") == current)
    detail: dict[str, Any] = context["context"] if isinstance(context.get("context"), dict) else {}
    for ref, section in (("cluster", "clusters"), ("user", "users")):
        if detail.get(ref) not in names[section]:
            return f"context {current!r} names {ref} {detail.get(ref)!r}, which is not in its {section}"
    clusters = [e for e in config["clusters"] if isinstance(e, dict)]
    cluster = next(e for e in clusters if e.get("name") == detail["cluster"])
    body = cluster.get("cluster")
    server = body.get("server") if isinstance(body, dict) else None
    if not isinstance(server, str) or not server.startswith("https://"):
        return f"cluster {detail['cluster']!r} has no https server"
    return None


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
    try:
        settings: Settings | None = parse(raw)
    except SettingsError as err:
        problems[:0] = str(err).splitlines()[1:]
        settings = None
    required = required_secrets(settings) if settings is not None else _required_secrets_of(raw)
    for key in sorted(required - keys):
        problems.append(
            f"{NAMESPACE}:{key}: required secret is missing ({SECRET_KEYS[key]}); set it with "
            f"`pulumi config set --secret {key}`"
        )
    if "kubeconfig" in required & keys:
        problem = kubeconfig_problem(cfg.get("kubeconfig") or "")
        if problem:
            problems.append(f"{NAMESPACE}:kubeconfig: the secret (its value not shown) {problem}")
    if problems:
        raise SettingsError("invalid stack configuration:\n  " + "\n  ".join(p.strip() for p in problems))
    assert settings is not None
    used = required_secrets(settings)

    def secret(key: str) -> pulumi.Output[str] | None:
        return cfg.require_secret(key) if key in used else None

    return settings, StackSecrets(
        onepassword_token=cfg.require_secret("onepasswordToken"),
        ssh_private_key=secret("sshPrivateKey"),
        kubeconfig=secret("kubeconfig"),
        cloudflare_api_token=secret("cloudflareApiToken"),
        cloudflare_zone_id=secret("cloudflareZoneId"),
    )
