"""Media: Jellyfin and Immich, with the family's files on the NAS.

The NAS shares are static NFS PersistentVolumes with the Retain policy (deleting a claim never
deletes photos); app state (Jellyfin's config, Immich's database and queue) lives in protected
local-path volumes declared through :func:`components.volumes.stateful_pvc`, so the backup
component copies them without being told. Both apps only declare routes; ingress, monitors and
tiles derive from those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import capacity
from components import k8s as kb
from components.capacity import WorkloadRegistry
from components.guardrails import Flow, FlowRegistry, Peer
from components.routes import Dashboard, Route, RouteRegistry
from components.secrets import Secrets
from components.volumes import VolumeRegistry, stateful_pvc
from config.settings import Settings
from config.types import memory_bytes

JELLYFIN_NS = "jellyfin"
IMMICH_NS = "immich"
JELLYFIN_PORT = 8096
IMMICH_PORT = 2283
POSTGRES_PORT = 5432
POSTGRES_SERVICE = "immich-postgresql"
IMMICH_SECRET = "immich-db"
# Immich's images run as this user; the volumes are group-owned by it (fsGroup).
APP_UID = 1000
POSTGRES_UID = 999
# jellyfin/jellyfin 10.11.8: with no TranscodingTempPath, transcodes go to <cache>/transcodes
# (MediaBrowser.Common/Configuration/EncodingConfigurationExtensions.cs GetTranscodePath); the
# encoding options live in <config dir>/encoding.xml (EncodingConfigurationStore key "encoding",
# XmlSerializer: elements left out keep the EncodingOptions constructor's defaults, and there
# EnableSegmentDeletion = false, SegmentKeepSeconds = 720). The image's config dir is not the
# /config volume itself: jellyfin/jellyfin-packaging docker/Dockerfile (v10.11.8) sets
# JELLYFIN_DATA_DIR=/config, JELLYFIN_CONFIG_DIR=/config/config, JELLYFIN_CACHE_DIR=/cache.
JELLYFIN_CACHE = "/cache"
JELLYFIN_CONFIG_DIR = "/config/config"
JELLYFIN_ENCODING_XML = f"{JELLYFIN_CONFIG_DIR}/encoding.xml"


@dataclass(frozen=True)
class MediaArgs:
    settings: Settings
    provider: k8s.Provider
    routes: RouteRegistry
    volumes: VolumeRegistry
    secrets: Secrets
    workloads: WorkloadRegistry
    flows: FlowRegistry


# The immich chart's bjw-s common 4.4.0 labels: name = the part's nameOverride, instance = release,
# controller = the controller key; its Services select on all three.
def immich_pods(part: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": part,
        "app.kubernetes.io/instance": "immich",
        "app.kubernetes.io/controller": "main",
    }


def declare_immich(s: Settings, workloads: WorkloadRegistry, flows: FlowRegistry) -> None:
    """Immich's server and Valkey (chart values: resources, pinned by defaultPodOptions), their
    Services, and the server's flows to its database and queue."""
    values = immich_values(s)
    node = values["defaultPodOptions"]["nodeSelector"]
    for part in ("server", "valkey"):
        main = values[part]["controllers"]["main"]["containers"]["main"]
        workloads.add(
            capacity.from_values(f"immich-{part}", IMMICH_NS, main["resources"], node_selector=node)
        )
    for part, ports in (("server", {IMMICH_PORT: "http"}), ("valkey", {6379: "redis"})):
        # The Services themselves carry name and instance, not the controller label.
        labels = {"app.kubernetes.io/name": part, "app.kubernetes.io/instance": "immich"}
        workloads.service(f"immich-{part}", IMMICH_NS, immich_pods(part), ports, labels=labels)
    server = Peer(IMMICH_NS, immich_pods("server"))
    postgres = kb.selector(POSTGRES_SERVICE)
    flows.add(Flow("immich-server-to-postgresql", server, IMMICH_NS, postgres, ("postgres",)))
    flows.add(Flow("immich-server-to-valkey", server, IMMICH_NS, immich_pods("valkey"), ("redis",)))


def nfs_volume(
    name: str,
    *,
    server: str,
    path: str,
    size: str,
    version: str,
    access_mode: str,
    read_only: bool,
    resource_name: str,
    volumes: VolumeRegistry,
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.PersistentVolume:
    """A static NFS PersistentVolume that outlives its claim (Retain) and Pulumi (protect, unless
    the stack's volumes are ephemeral: then annotated with the reason instead)."""
    mount_options = [f"nfsvers={version}", "hard", "noatime"]
    if read_only:
        mount_options.append("ro")
    return k8s.core.v1.PersistentVolume(
        resource_name,
        metadata=kb.metadata(name, annotations=volumes.annotations()),
        spec={
            "capacity": {"storage": size},
            "accessModes": [access_mode],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "mountOptions": mount_options,
            "nfs": {"server": server, "path": path, "readOnly": read_only},
        },
        opts=pulumi.ResourceOptions.merge(opts, volumes.protection()),
    )


def segment_deletion_command() -> str:
    """Shell (the image's sh, grep and sed) that turns on Jellyfin's segment deletion in
    encoding.xml: the element set to true, added when missing, the file created on a first
    start. Jellyfin then deletes transcode segments older than SegmentKeepSeconds."""
    on = "<EnableSegmentDeletion>true</EnableSegmentDeletion>"
    new_file = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<EncodingOptions xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema">\n'
        f"  {on}\n"
        "</EncodingOptions>\n"
    )
    return "\n".join(
        [
            f"f={JELLYFIN_ENCODING_XML}",
            f"mkdir -p {JELLYFIN_CONFIG_DIR}",  # a first start: Jellyfin has not made it yet
            'if [ ! -s "$f" ]; then',
            f"  cat > \"$f\" <<'EOF'\n{new_file}EOF",
            'elif grep -q "<EnableSegmentDeletion>" "$f"; then',
            f"  sed -i 's|<EnableSegmentDeletion>[^<]*</EnableSegmentDeletion>|{on}|' \"$f\"",
            "else",
            f"  sed -i 's|</EncodingOptions>|  {on}\\n</EncodingOptions>|' \"$f\"",
            "fi",
        ]
    )


def postgres_shared_buffers(memory_limit: str) -> str:
    """A quarter of the container's memory limit (PostgreSQL's usual starting point), in MB:
    shared buffers count against the cgroup limit with every backend's own memory on top."""
    return f"{memory_bytes(memory_limit) // 4 // 2**20}MB"


class Media(pulumi.ComponentResource):
    """Jellyfin (Deployment) and Immich (chart + self-managed PostgreSQL)."""

    immich_release: k8s.helm.v3.Release
    postgres_service: str  # in-cluster host name of Immich's database
    postgres_pods: tuple[str, dict[str, str]]  # its namespace and pod selector

    def __init__(self, name: str, args: MediaArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pi-cluster:media:Media", name, None, opts)
        self._name = name
        self._args = args
        self._child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        self._jellyfin()
        self._immich()
        self.postgres_service = f"{POSTGRES_SERVICE}.{IMMICH_NS}.svc.cluster.local"
        self.postgres_pods = (IMMICH_NS, kb.selector(POSTGRES_SERVICE))
        self.register_outputs({"postgresService": self.postgres_service})

    def _opts(self, *depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, provider=self._args.provider, depends_on=list(depends_on))

    def _nas_share(
        self,
        volume: str,
        namespace: str,
        ns: pulumi.Resource,
        app: str,
        path: str,
        size: str,
        access_mode: str,
    ) -> k8s.core.v1.PersistentVolumeClaim:
        """An NFS export of the NAS as a Retain PV and its bound PVC, both protected (or both
        ephemeral, as the volume registry says)."""
        s, name = self._args.settings, self._name
        pv = nfs_volume(
            volume,
            server=s.device(s.enabled_media.nas).address,
            path=path,
            size=size,
            version=s.enabled_media.nfs_version,
            access_mode=access_mode,
            read_only=access_mode == "ReadOnlyMany",
            resource_name=f"{name}-{volume}-pv",
            volumes=self._args.volumes,
            opts=self._child,
        )
        return kb.pvc(
            volume,
            namespace,
            size,
            app=app,
            storage_class="",
            access_mode=access_mode,
            volume_name=volume,
            resource_name=f"{name}-{volume}",
            ephemeral_reason=self._args.volumes.ephemeral_reason,
            opts=pulumi.ResourceOptions.merge(self._opts(ns, pv), self._args.volumes.protection()),
        )

    def _jellyfin(self) -> None:
        s, a, name = self._args.settings, self._args, self._name
        j, node = s.enabled_media.jellyfin, s.placement.jellyfin
        ns = kb.namespace(
            JELLYFIN_NS, resource_name=f"{name}-jellyfin-namespace", opts=self._child, workloads=a.workloads
        )
        config = stateful_pvc(
            a.volumes,
            name="jellyfin-config",
            namespace=JELLYFIN_NS,
            size=j.config_size,
            node=node,
            app="jellyfin",
            resource_name=f"{name}-jellyfin-config",
            opts=self._opts(ns),
        )
        video = self._nas_share(
            "jellyfin-video", JELLYFIN_NS, ns, "jellyfin", j.video_path, j.video_size, "ReadOnlyMany"
        )
        segments = kb.container(
            "segment-deletion",
            j.image,
            j.resources,
            command=["sh", "-c", segment_deletion_command()],
            volume_mounts=[{"name": "config", "mountPath": "/config"}],
            run_as_user=APP_UID,
        )
        main = kb.container(
            "jellyfin",
            j.image,
            j.resources,
            env={"TZ": s.timezone, "JELLYFIN_CACHE_DIR": JELLYFIN_CACHE},
            ports=[{"name": "http", "containerPort": JELLYFIN_PORT, "protocol": "TCP"}],
            volume_mounts=[
                {"name": "config", "mountPath": "/config"},
                {"name": "video", "mountPath": "/media", "readOnly": True},
                {"name": "cache", "mountPath": JELLYFIN_CACHE},
                # Transcodes on their own volume, sized for a film (media.jellyfin.transcodeSize).
                {"name": "transcodes", "mountPath": f"{JELLYFIN_CACHE}/transcodes"},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
            startup=kb.http_probe("/health", "http", period=10, failures=30),
            readiness=kb.http_probe("/health", "http"),
            liveness=kb.http_probe("/health", "http", period=30, failures=5),
            run_as_user=APP_UID,
        )
        kb.deployment(
            "jellyfin",
            JELLYFIN_NS,
            [main],
            recreate=True,  # the config volume is ReadWriteOnce
            pod=kb.PodOptions(
                node_name=node,
                fs_group=APP_UID,
                run_as_user=APP_UID,
                volumes=[
                    {"name": "config", "persistentVolumeClaim": {"claimName": "jellyfin-config"}},
                    {
                        "name": "video",
                        "persistentVolumeClaim": {"claimName": "jellyfin-video", "readOnly": True},
                    },
                    {"name": "cache", "emptyDir": {"sizeLimit": "2Gi"}},
                    {"name": "transcodes", "emptyDir": {"sizeLimit": j.transcode_size}},
                    {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                ],
                init_containers=[segments],
            ),
            resource_name=f"{name}-jellyfin",
            opts=self._opts(config, video),
            workloads=a.workloads,
        )
        kb.service(
            "jellyfin",
            JELLYFIN_NS,
            [{"name": "http", "port": JELLYFIN_PORT, "targetPort": "http", "protocol": "TCP"}],
            resource_name=f"{name}-jellyfin-service",
            opts=self._opts(ns),
            workloads=a.workloads,
        )
        a.routes.add(
            Route(
                name="jellyfin",
                host_prefix="jellyfin",
                namespace=JELLYFIN_NS,
                service="jellyfin",
                port=JELLYFIN_PORT,
                health_path="/health",
                body_size="0",
                dashboard=Dashboard(
                    group="Media",
                    icon="jellyfin.png",
                    description="Movies and TV from the NAS",
                    widget="jellyfin",
                    widget_fields={"key": "{{HOMEPAGE_VAR_JELLYFIN_KEY}}", "enableBlocks": True},
                ),
            )
        )

    def _immich(self) -> None:
        s, a, name = self._args.settings, self._args, self._name
        im, db, node = s.enabled_media.immich, s.enabled_media.immich.database, s.placement.immich
        ns = kb.namespace(
            IMMICH_NS, resource_name=f"{name}-immich-namespace", opts=self._child, workloads=a.workloads
        )
        secret = a.secrets.external_secret(
            IMMICH_SECRET, IMMICH_NS, {"DB_PASSWORD": im.db_password_ref}, parent=self, depends_on=[ns]
        )
        library = self._nas_share(
            "immich-library", IMMICH_NS, ns, "immich", im.library_path, im.library_size, "ReadWriteMany"
        )
        data = stateful_pvc(
            a.volumes,
            name="immich-postgresql-data",
            namespace=IMMICH_NS,
            size=db.size,
            node=node,
            app=POSTGRES_SERVICE,
            resource_name=f"{name}-immich-postgresql-data",
            opts=self._opts(ns),
        )
        valkey = stateful_pvc(
            a.volumes,
            name="immich-valkey-data",
            namespace=IMMICH_NS,
            size=im.valkey_size,
            node=node,
            app="immich-valkey",
            resource_name=f"{name}-immich-valkey-data",
            opts=self._opts(ns),
        )
        postgres = self._postgres(node, secret, data)
        declare_immich(s, a.workloads, a.flows)
        self.immich_release = kb.helm_release(
            "immich",
            IMMICH_NS,
            s.chart_source(im.chart),
            immich_values(s),
            resource_name=f"{name}-immich",
            timeout=900,
            opts=self._opts(ns, library, valkey, secret, postgres),
        )
        a.routes.add(
            Route(
                name="immich",
                host_prefix="immich",
                namespace=IMMICH_NS,
                service="immich-server",
                port=IMMICH_PORT,
                health_path="/api/server/ping",
                body_size="0",  # phone backups upload whole videos
                read_timeout=600,
                send_timeout=600,
                dashboard=Dashboard(
                    group="Media",
                    icon="immich.png",
                    description="Photo backup",
                    widget="immich",
                    widget_fields={"key": "{{HOMEPAGE_VAR_IMMICH_KEY}}", "version": 2},
                ),
            )
        )

    def _postgres(self, node: str, secret: pulumi.Resource, data: pulumi.Resource) -> k8s.core.v1.Service:
        """PostgreSQL with Immich's vector extensions, pinned next to its local volume."""
        db = self._args.settings.enabled_media.immich.database
        ready = ["pg_isready", "-h", "127.0.0.1", "-U", db.user, "-d", db.name]
        main = kb.container(
            "postgres",
            db.image,
            db.resources,
            # The image's CMD plus shared_buffers (immich-app/base-images postgres/Dockerfile, read
            # at commit 1f6a591: the one Dockerfile behind every <pg>-vectorchord<v>-pgvectors<v>
            # image tag, which is not a tag of that repository; ENTRYPOINT immich-docker-entrypoint.sh):
            # its postgresql.ssd.conf sets 512MB, half of a 1Gi limit; -c outranks the file.
            args=[
                "postgres",
                "-c",
                "config_file=/etc/postgresql/postgresql.conf",
                "-c",
                f"shared_buffers={postgres_shared_buffers(db.resources.memory_limit)}",
            ],
            env={
                "POSTGRES_USER": db.user,
                "POSTGRES_DB": db.name,
                "POSTGRES_INITDB_ARGS": "--data-checksums",
                "PGDATA": "/var/lib/postgresql/data/pgdata",
            },
            env_from_secrets={"POSTGRES_PASSWORD": (IMMICH_SECRET, "DB_PASSWORD")},
            ports=[{"name": "postgres", "containerPort": POSTGRES_PORT, "protocol": "TCP"}],
            volume_mounts=[
                {"name": "data", "mountPath": "/var/lib/postgresql/data"},
                # The image's entrypoint writes postgresql.conf here at start (read-only root fs).
                {"name": "conf", "mountPath": "/etc/postgresql"},
                {"name": "run", "mountPath": "/var/run/postgresql"},
                {"name": "tmp", "mountPath": "/tmp"},
                {"name": "shm", "mountPath": "/dev/shm"},
            ],
            startup=kb.exec_probe(ready, period=10, failures=60),
            readiness=kb.exec_probe(ready, period=10),
            liveness=kb.exec_probe(ready, period=30, failures=5),
            run_as_user=POSTGRES_UID,
        )
        kb.deployment(
            POSTGRES_SERVICE,
            IMMICH_NS,
            [main],
            recreate=True,  # one writer on a ReadWriteOnce volume
            pod=kb.PodOptions(
                node_name=node,
                fs_group=POSTGRES_UID,
                run_as_user=POSTGRES_UID,
                volumes=[
                    {"name": "data", "persistentVolumeClaim": {"claimName": "immich-postgresql-data"}},
                    {"name": "conf", "emptyDir": {"sizeLimit": "16Mi"}},
                    {"name": "run", "emptyDir": {}},
                    {"name": "tmp", "emptyDir": {}},
                    {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "128Mi"}},
                ],
            ),
            resource_name=f"{self._name}-immich-postgresql",
            opts=self._opts(secret, data),
            workloads=self._args.workloads,
        )
        return kb.service(
            POSTGRES_SERVICE,
            IMMICH_NS,
            [{"name": "postgres", "port": POSTGRES_PORT, "targetPort": "postgres", "protocol": "TCP"}],
            resource_name=f"{self._name}-immich-postgresql-service",
            opts=self._opts(secret),
            workloads=self._args.workloads,
        )


def immich_values(s: Settings) -> dict[str, Any]:
    """Chart values, only keys immich chart 0.10.3 (bjw-s common 4.x) reads."""
    im, db, node = s.enabled_media.immich, s.enabled_media.immich.database, s.placement.immich
    container_security = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    env: dict[str, Any] = {
        "TZ": s.timezone,
        **im.env,
        "DB_HOSTNAME": f"{POSTGRES_SERVICE}.{IMMICH_NS}.svc.cluster.local",
        "DB_PORT": str(POSTGRES_PORT),
        "DB_USERNAME": db.user,
        "DB_DATABASE_NAME": db.name,
        "DB_VECTOR_EXTENSION": db.vector_extension,
        "DB_PASSWORD": {"valueFrom": {"secretKeyRef": {"name": IMMICH_SECRET, "key": "DB_PASSWORD"}}},
        "IMMICH_MEDIA_LOCATION": "/data",
        "IMMICH_MACHINE_LEARNING_ENABLED": "true" if im.machine_learning else "false",
    }
    return {
        "defaultPodOptions": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": APP_UID,
                "runAsGroup": APP_UID,
                "fsGroup": APP_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
        },
        "controllers": {"main": {"containers": {"main": {"image": {"tag": im.version}}}}},
        "immich": {"persistence": {"library": {"existingClaim": "immich-library"}}},
        "server": {
            "controllers": {
                "main": {
                    "containers": {
                        "main": {
                            "env": env,
                            "resources": im.server_resources.spec(),
                            "securityContext": container_security,
                        }
                    }
                }
            }
        },
        "machine-learning": {
            "enabled": im.machine_learning,
            "controllers": {"main": {"containers": {"main": {"securityContext": container_security}}}},
        },
        "valkey": {
            "enabled": True,
            "controllers": {
                "main": {
                    "containers": {
                        "main": {
                            "resources": im.valkey_resources.spec(),
                            "securityContext": container_security,
                        }
                    }
                }
            },
            "persistence": {
                "data": {
                    "enabled": True,
                    "type": "persistentVolumeClaim",
                    "existingClaim": "immich-valkey-data",
                }
            },
        },
    }
