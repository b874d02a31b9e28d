"""Status: Uptime Kuma with AutoKuma, whose monitors are generated from the frozen routes.

Every route gets an HTTP monitor at its health path; the DNS chain and the platform get fixed
monitors (each Pi-hole's DNS on :53, Unbound :5335, the K3s API :6443, Prometheus' health
endpoint); a Discord notification applies to all. AutoKuma reads them as static monitor files
(one JSON object per file, the file name being the AutoKuma id) and keeps its own sled database
on a PVC so a restart never duplicates monitors. The Discord webhook never enters the files:
AutoKuma's template function ``get_env`` reads it from an ``AUTOKUMA__ENV__`` variable filled
from a Secret.

The files come from a ConfigMap volume, whose keys the kubelet makes symlinks into a hidden
``..data`` directory. AutoKuma 2.0.0 (BigBoot/AutoKuma v2.0.0 autokuma/src/sources/file_source.rs)
walks the folder with walkdir, skips every entry whose name starts with ``.`` and keeps only
regular files unless ``files.follow_symlinks`` is set (config.rs, default false): without
``AUTOKUMA__FILES__FOLLOW_SYMLINKS=true`` it reads no file at all.

Uptime Kuma 2.0.2 creates its first user only through the socket ``setup`` event its /setup page
sends (louislam/uptime-kuma 2.0.2 server/server.js: ``needSetup`` while the user table is empty;
no environment variable or file creates one). Until that user exists AutoKuma cannot log in, so
:func:`first_admin_note` tells the operator which credentials to enter there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import k8s as kb
from components.capacity import WorkloadRegistry
from components.dns import pihole_instances
from components.guardrails import FlowRegistry, Peer, url_flow
from components.monitoring import ALERTMANAGER_URL, PROMETHEUS_URL
from components.routes import Dashboard, Route
from components.secrets import Secrets
from components.volumes import VolumeRegistry, stateful_pvc
from config.settings import Settings

NAMESPACE = "uptime-kuma"
APP = "uptime-kuma"
PORT = 3001
KUMA_URL = f"http://{APP}.{NAMESPACE}.svc.cluster.local:{PORT}"
DATA_PVC = "uptime-kuma-data"
AUTOKUMA_PVC = "autokuma-data"
MONITORS_CONFIGMAP = "autokuma-monitors"
CREDENTIALS_SECRET = "uptime-kuma-credentials"
DISCORD_SECRET = "autokuma-discord"
DISCORD_ENV = "AUTOKUMA__ENV__DISCORD_WEBHOOK"
NOTIFICATION_ID = "discord"
RUN_AS = 1000  # the images' "node" user (Uptime Kuma rootless) and AutoKuma's data owner

CREDENTIAL_REFS = {"username": "uptime-kuma/username", "password": "uptime-kuma/password"}
DISCORD_WEBHOOK_REF = "discord/webhook-url"


@dataclass(frozen=True)
class StatusArgs:
    settings: Settings
    provider: k8s.Provider
    routes: Sequence[Route]  # the frozen registry
    volumes: VolumeRegistry
    secrets: Secrets
    workloads: WorkloadRegistry
    flows: FlowRegistry


def status_route(s: Settings) -> Route:
    """Uptime Kuma's route. Its tile has no uptimekuma widget: that widget reads a status page,
    and AutoKuma 2.0.0's ``status_page`` entity lists monitors by Uptime Kuma's numeric id
    (kuma-client src/models/status_page.rs PublicGroupMonitor.id; entity.rs resolves names only
    for monitors), which the stack cannot know before AutoKuma has created them."""
    return Route(
        name="status",
        host_prefix="status",
        namespace=NAMESPACE,
        service=APP,
        port=PORT,
        health_path="/",
        dashboard=Dashboard(
            group="Monitoring",
            icon="uptime-kuma.png",
            description="Uptime of every service",
        ),
    )


def first_admin_note(s: Settings, item: str) -> str:
    """What the operator does once after the first ``pulumi up`` (a stack output)."""
    return (
        f"Uptime Kuma 2.0.2 creates its first admin only on its setup page: open "
        f"https://status.{s.domain}/setup once and enter the username and password of 1Password "
        f"item '{item}' (fields 'username' and 'password') in vault '{s.onepassword.vault}'. "
        "AutoKuma logs in with exactly these and creates no monitor until then."
    )


def monitor_id(route: Route) -> str:
    return f"route-{route.name}"


def monitors(routes: Sequence[Route], s: Settings) -> dict[str, dict[str, Any]]:
    """AutoKuma entities by id: the Discord notification, one HTTP monitor per route, and the
    fixed DNS/platform monitors."""
    common = {
        "interval": s.status.interval_seconds,
        "max_retries": 2,
        "notification_name_list": [NOTIFICATION_ID],
    }
    out: dict[str, dict[str, Any]] = {
        NOTIFICATION_ID: {
            "type": "notification",
            "name": "Discord",
            "active": True,
            "is_default": True,
            "config": {
                "type": "discord",
                "discordUsername": "Uptime Kuma",
                "discordWebhookUrl": "{{ get_env(name='" + DISCORD_ENV + "') }}",
            },
        }
    }
    for route in routes:
        out[monitor_id(route)] = {
            "type": "http",
            "name": f"{route.name} ({route.host(s.domain)})",
            "url": f"{route.url(s.domain)}{route.health_path}",
            **common,
        }
    # One DNS monitor per Pi-hole instance: each is a DNS server the LAN uses.
    fixed: dict[str, dict[str, Any]] = {
        f"dns-{inst.name}": {
            "type": "dns",
            "name": f"Pi-hole DNS {inst.name} ({inst.address}:53)",
            "hostname": s.status.dns_probe_name,
            "dns_resolve_server": inst.address,
            "dns_resolve_type": "A",
            "port": 53,
        }
        for inst in pihole_instances(s)
    }
    fixed |= {
        "dns-unbound": {
            "type": "port",
            "name": f"Unbound ({s.status.unbound_host}:5335)",
            "hostname": s.status.unbound_host,
            "port": 5335,
        },
        "k3s-api": {
            "type": "port",
            "name": f"K3s API ({s.server.address}:6443)",
            "hostname": s.server.address,
            "port": 6443,
        },
        "prometheus": {
            "type": "http",
            "name": "Prometheus health",
            "url": f"{PROMETHEUS_URL}/-/healthy",
        },
        "alertmanager": {
            "type": "http",
            "name": "Alertmanager health",
            "url": f"{ALERTMANAGER_URL}/-/healthy",
        },
    }
    for key, monitor in fixed.items():
        if key in out:
            raise ValueError(f"monitor id {key!r} is generated twice")
        out[key] = {**monitor, **common}
    return out


def probed_urls(s: Settings) -> list[str]:
    """In-cluster addresses the fixed monitors call directly (route monitors use the public
    host, which the ingress controller answers)."""
    return [
        f"{PROMETHEUS_URL}/-/healthy",
        f"{ALERTMANAGER_URL}/-/healthy",
        f"tcp://{s.status.unbound_host}:5335",
    ]


def monitor_files(routes: Sequence[Route], s: Settings) -> dict[str, str]:
    """ConfigMap data: ``<id>.json`` per entity (AutoKuma takes the id from the file name)."""
    entities = monitors(routes, s)
    return {f"{key}.json": json.dumps(value, indent=2, sort_keys=True) for key, value in entities.items()}


class Status(pulumi.ComponentResource):
    """Uptime Kuma (v2) and AutoKuma with the generated monitors."""

    def __init__(self, name: str, args: StatusArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pi-cluster:status:Status", name, None, opts)
        s = args.settings
        files = monitor_files(args.routes, s)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        ns = kb.namespace(NAMESPACE, resource_name=f"{name}-namespace", opts=child, workloads=args.workloads)
        in_ns = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[ns])
        node = s.placement.status

        credentials = args.secrets.external_secret(
            CREDENTIALS_SECRET, NAMESPACE, CREDENTIAL_REFS, parent=self, depends_on=[ns]
        )
        discord = args.secrets.external_secret(
            DISCORD_SECRET, NAMESPACE, {"webhook-url": DISCORD_WEBHOOK_REF}, parent=self, depends_on=[ns]
        )
        data = stateful_pvc(
            args.volumes,
            name=DATA_PVC,
            namespace=NAMESPACE,
            size=s.status.storage_size,
            node=node,
            sqlite=True,
            app=APP,
            resource_name=f"{name}-data",
            opts=in_ns,
        )
        kuma = kb.deployment(
            APP,
            NAMESPACE,
            [
                kb.container(
                    APP,
                    s.status.uptime_kuma_image,
                    s.status.resources.uptime_kuma,
                    env={"UPTIME_KUMA_DB_TYPE": "sqlite", "UPTIME_KUMA_PORT": str(PORT)},
                    ports=[{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
                    volume_mounts=[
                        {"name": "data", "mountPath": "/app/data"},
                        {"name": "tmp", "mountPath": "/tmp"},
                    ],
                    readiness=kb.http_probe("/", "http"),
                    liveness=kb.http_probe("/", "http", period=30, failures=5),
                    startup=kb.http_probe("/", "http", period=10, failures=30),
                    run_as_user=RUN_AS,
                )
            ],
            recreate=True,  # ReadWriteOnce volume
            pod=kb.PodOptions(
                node_name=node,
                fs_group=RUN_AS,
                run_as_user=RUN_AS,
                volumes=[
                    {"name": "data", "persistentVolumeClaim": {"claimName": DATA_PVC}},
                    {"name": "tmp", "emptyDir": {}},
                ],
            ),
            resource_name=f"{name}-uptime-kuma",
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[data]),
            workloads=args.workloads,
        )
        kb.service(
            APP,
            NAMESPACE,
            [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}],
            resource_name=f"{name}-uptime-kuma-service",
            opts=in_ns,
            workloads=args.workloads,
        )
        kuma_pods = Peer(NAMESPACE, kb.selector(APP))
        args.flows.add_all(
            [
                url_flow(
                    args.workloads,
                    "autokuma-to-uptime-kuma",
                    Peer(NAMESPACE, kb.selector("autokuma")),
                    KUMA_URL,
                ),
                *(
                    url_flow(
                        args.workloads,
                        f"uptime-kuma-to-{url.split('://')[1].split('.')[0]}",
                        kuma_pods,
                        url,
                    )
                    for url in probed_urls(s)
                ),
            ]
        )

        monitors_cm = k8s.core.v1.ConfigMap(
            f"{name}-monitors",
            metadata=kb.metadata(MONITORS_CONFIGMAP, NAMESPACE, "autokuma"),
            data=files,
            opts=in_ns,
        )
        autokuma_data = stateful_pvc(
            args.volumes,
            name=AUTOKUMA_PVC,
            namespace=NAMESPACE,
            size=s.status.autokuma_storage_size,
            node=node,
            app="autokuma",
            resource_name=f"{name}-autokuma-data",
            opts=in_ns,
        )
        kb.deployment(
            "autokuma",
            NAMESPACE,
            [
                kb.container(
                    "autokuma",
                    s.status.autokuma_image,
                    s.status.resources.autokuma,
                    env={
                        "AUTOKUMA__KUMA__URL": KUMA_URL,
                        "AUTOKUMA__STATIC_MONITORS": "/monitors",
                        "AUTOKUMA__DATA_PATH": "/data",
                        "AUTOKUMA__DOCKER__ENABLED": "false",
                        "AUTOKUMA__ON_DELETE": "delete",
                        # The ConfigMap's keys are symlinks (module docstring).
                        "AUTOKUMA__FILES__FOLLOW_SYMLINKS": "true",
                    },
                    env_from_secrets={
                        "AUTOKUMA__KUMA__USERNAME": (CREDENTIALS_SECRET, "username"),
                        "AUTOKUMA__KUMA__PASSWORD": (CREDENTIALS_SECRET, "password"),
                        DISCORD_ENV: (DISCORD_SECRET, "webhook-url"),
                    },
                    volume_mounts=[
                        {"name": "data", "mountPath": "/data"},
                        {"name": "monitors", "mountPath": "/monitors", "readOnly": True},
                    ],
                    run_as_user=RUN_AS,
                )
            ],
            recreate=True,  # ReadWriteOnce volume holding the sled database
            pod=kb.PodOptions(
                node_name=node,
                fs_group=RUN_AS,
                run_as_user=RUN_AS,
                volumes=[
                    {"name": "data", "persistentVolumeClaim": {"claimName": AUTOKUMA_PVC}},
                    {"name": "monitors", "configMap": {"name": MONITORS_CONFIGMAP}},
                ],
            ),
            resource_name=f"{name}-autokuma",
            workloads=args.workloads,
            checkov_skips={
                check: "AutoKuma serves no HTTP or health endpoint to probe; it exits on a fatal "
                "error and the kubelet restarts it"
                for check in ("CKV_K8S_8", "CKV_K8S_9")
            },
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=args.provider,
                depends_on=[autokuma_data, monitors_cm, credentials, discord, kuma],
            ),
        )
        self.monitor_ids = sorted(key.removesuffix(".json") for key in files)
        self.first_admin = first_admin_note(s, args.secrets.item(CREDENTIAL_REFS["username"]).split("/")[0])
        self.register_outputs({"monitors": self.monitor_ids, "firstAdmin": self.first_admin})
