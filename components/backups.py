"""Backups: weekly copies of every stateful volume and of Immich's database to the NAS, and a
weekly restore drill that proves the copies can be used.

What is copied is derived from the frozen :class:`VolumeRegistry`, never listed by hand: a
volume declared with ``stateful_pvc`` anywhere in the stack is in the next backup. The scripts
are real files in ``components/scripts`` (shipped in a ConfigMap) and run in images that already
contain their tools. SSH to the NAS always checks the host key from the settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import k8s as kb
from components.capacity import WorkloadRegistry, from_pod_spec
from components.guardrails import Flow, FlowRegistry, Peer
from components.secrets import Secrets
from components.volumes import StatefulVolume, VolumeRegistry
from config.settings import Settings

NAMESPACE = "backup-jobs"
SCRIPTS = Path(__file__).parent / "scripts"
SCRIPT_FILES = (
    "backup-lib.sh",
    "retention.sh",
    "pvc-backup.sh",
    "postgres-dump.sh",
    "postgres-ship.sh",
    "drill-fetch.sh",
    "drill-sqlite.sh",
    "drill-postgres.sh",
)
SCRIPTS_CONFIGMAP = "backup-scripts"
KNOWN_HOSTS_CONFIGMAP = "nas-known-hosts"
SSH_SECRET = "nas-ssh"
DB_SECRET = "postgres-backup"
NOBODY = 65534  # exists in the Alpine images; ssh needs a passwd entry for its user
POSTGRES_UID = 999
DRILL_DB = "restore_drill"
# Where the Jobs keep dumps and fetched copies: the pod's emptyDir scratch volume.
SCRATCH = "/scratch"


def volume_key(volume: StatefulVolume) -> str:
    """``<namespace>_<pvc>``: the local-path directory suffix and the folder name on the NAS."""
    return f"{volume.namespace}_{volume.name}"


def backup_plan(volumes: Sequence[StatefulVolume]) -> dict[str, tuple[StatefulVolume, ...]]:
    """Stateful volumes grouped by the node whose local-path directory holds them.

    Every declared volume lands in exactly one group; one without a node cannot be copied from
    a node, so it is refused rather than silently skipped.
    """
    plan: dict[str, list[StatefulVolume]] = {}
    for v in volumes:
        if v.node is None:
            raise ValueError(
                f"stateful volume {v.namespace}/{v.name} has no node; backups copy local-path "
                "volumes from their node, so declare the node it lives on"
            )
        plan.setdefault(v.node, []).append(v)
    return {node: tuple(sorted(vs, key=volume_key)) for node, vs in sorted(plan.items())}


def cronjob_name(node: str, home: str) -> str:
    """``pvc-backup`` on the backup node; other nodes holding volumes get their own job."""
    return "pvc-backup" if node == home else f"pvc-backup-{node}"


@dataclass(frozen=True)
class BackupsArgs:
    settings: Settings
    provider: k8s.Provider
    volumes: VolumeRegistry
    secrets: Secrets
    postgres_host: str  # in-cluster name of Immich's PostgreSQL service
    workloads: WorkloadRegistry
    flows: FlowRegistry
    # Immich's PostgreSQL pods (namespace, selector): the dump and the drill connect to them.
    postgres_pods: tuple[str, Mapping[str, str]] | None = None


class Backups(pulumi.ComponentResource):
    """CronJobs ``pvc-backup``, ``postgres-backup`` and ``restore-drill`` in ``backup-jobs``."""

    backed_up: tuple[str, ...]  # "<namespace>_<pvc>" of every volume copied

    def __init__(self, name: str, args: BackupsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pi-cluster:backups:Backups", name, None, opts)
        s, b = args.settings, args.settings.enabled_backups
        self._name, self._args = name, args
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        volumes = args.volumes.freeze()
        plan = backup_plan(volumes)

        ns = kb.namespace(
            NAMESPACE,
            resource_name=f"{name}-namespace",
            pod_security="privileged",
            reason="pvc-backup reads local-path volumes through a read-only hostPath mount",
            opts=child,
            workloads=args.workloads,
        )
        deps = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[ns])
        scripts = k8s.core.v1.ConfigMap(
            f"{name}-scripts",
            metadata=kb.metadata(SCRIPTS_CONFIGMAP, NAMESPACE, "backups"),
            data={f: (SCRIPTS / f).read_text() for f in SCRIPT_FILES},
            opts=deps,
        )
        known_hosts = k8s.core.v1.ConfigMap(
            f"{name}-known-hosts",
            metadata=kb.metadata(KNOWN_HOSTS_CONFIGMAP, NAMESPACE, "backups"),
            data={"known_hosts": b.known_hosts.strip() + "\n"},
            opts=deps,
        )
        ssh_key = args.secrets.external_secret(
            SSH_SECRET, NAMESPACE, {"ssh-privatekey": b.ssh_key_ref}, parent=self, depends_on=[ns]
        )
        db_password = args.secrets.external_secret(
            DB_SECRET,
            NAMESPACE,
            {"PGPASSWORD": s.enabled_media.immich.db_password_ref},
            parent=self,
            depends_on=[ns],
        )
        self._deps = [scripts, known_hosts, ssh_key]

        for node, vols in plan.items():
            self._pvc_backup(node, vols)
        self._deps.append(db_password)
        self._postgres_backup()
        self._restore_drill([v for v in volumes if v.sqlite])
        self.backed_up = tuple(volume_key(v) for vols in plan.values() for v in vols)
        self.register_outputs({"backedUp": list(self.backed_up)})

    # -- shared pieces -------------------------------------------------------------------------

    def _nas_env(self, base: str) -> dict[str, str]:
        s, b = self._args.settings, self._args.settings.enabled_backups
        return {
            "NAS_HOST": s.device(b.nas).address,
            "NAS_USER": b.ssh_user,
            "NAS_PORT": str(b.ssh_port),
            "NAS_BASE": base,
            "RETENTION": str(b.retention),
            "SSH_KEY": "/ssh/key/ssh-privatekey",
            "KNOWN_HOSTS": "/ssh/known_hosts/known_hosts",
            "SCRIPTS_DIR": "/scripts",
            "TZ": s.timezone,
        }

    def _pg_env(self) -> dict[str, str]:
        db = self._args.settings.enabled_media.immich.database
        return {
            "PGHOST": self._args.postgres_host,
            "PGPORT": "5432",
            "PGUSER": db.user,
            "PGDATABASE": db.name,
        }

    @staticmethod
    def _volumes(extra: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
        return [
            {"name": "scripts", "configMap": {"name": SCRIPTS_CONFIGMAP, "defaultMode": 0o555}},
            {"name": "known-hosts", "configMap": {"name": KNOWN_HOSTS_CONFIGMAP, "defaultMode": 0o444}},
            # group-readable for the non-root users through fsGroup; the scripts copy it to 0600
            {"name": "ssh-key", "secret": {"secretName": SSH_SECRET, "defaultMode": 0o440}},
            {"name": "scratch", "emptyDir": {"sizeLimit": "8Gi"}},
            *[dict(v) for v in extra],
        ]

    NAS_MOUNTS = (
        {"name": "scripts", "mountPath": "/scripts", "readOnly": True},
        {"name": "known-hosts", "mountPath": "/ssh/known_hosts", "readOnly": True},
        {"name": "ssh-key", "mountPath": "/ssh/key", "readOnly": True},
        {"name": "scratch", "mountPath": SCRATCH},
    )
    PG_MOUNTS = (
        {"name": "scripts", "mountPath": "/scripts", "readOnly": True},
        {"name": "scratch", "mountPath": SCRATCH},
    )

    def _cronjob(
        self,
        job: str,
        schedule: str,
        containers: Sequence[Mapping[str, Any]],
        pod: kb.PodOptions,
        deadline: int,
        exception_reason: str = "",
    ) -> k8s.batch.v1.CronJob:
        """A CronJob whose failure is a failed Job (no retries hiding it) for the alert rules.

        The capacity proof counts its pod as always on its node (a job that runs must find room).
        """
        template: dict[str, Any] = {
            "metadata": {"labels": kb.labels(job, "backup")},
            "spec": kb.pod_spec(containers, pod),
        }
        if exception_reason:
            template["metadata"]["annotations"] = {kb.EXCEPTIONS_ANNOTATION: exception_reason}
        self._args.workloads.add(from_pod_spec(job, NAMESPACE, template["spec"], kind="CronJob"))
        return k8s.batch.v1.CronJob(
            f"{self._name}-{job}",
            metadata=kb.metadata(
                job,
                NAMESPACE,
                job,
                extra_labels=kb.labels(job, "backup"),
                annotations=kb.checkov_waivers(template["spec"], exception_reason=exception_reason),
            ),
            spec={
                "schedule": schedule,
                "timeZone": self._args.settings.timezone,
                "concurrencyPolicy": "Forbid",
                "startingDeadlineSeconds": 3600,
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {
                    "metadata": {"labels": kb.labels(job, "backup")},
                    "spec": {"backoffLimit": 0, "activeDeadlineSeconds": deadline, "template": template},
                },
            },
            opts=pulumi.ResourceOptions(parent=self, provider=self._args.provider, depends_on=self._deps),
        )

    # -- the jobs ------------------------------------------------------------------------------

    def _pvc_backup(self, node: str, volumes: Sequence[StatefulVolume]) -> None:
        s, b = self._args.settings, self._args.settings.enabled_backups
        name = cronjob_name(node, s.placement.backups)
        env = {**self._nas_env(b.volumes_path), "VOLUMES": " ".join(volume_key(v) for v in volumes)}
        env["STORAGE_ROOT"] = "/storage"
        exceptions = kb.Exceptions(
            reason="reads every app's local-path volume, each owned by that app's user",
            run_as_root=True,
            add_capabilities=("DAC_READ_SEARCH",),
        )
        main = kb.container(
            "pvc-backup",
            b.images.rsync_image,
            b.resources,
            command=["sh", "/scripts/pvc-backup.sh"],
            env=env,
            volume_mounts=[*self.NAS_MOUNTS, {"name": "storage", "mountPath": "/storage", "readOnly": True}],
            exceptions=exceptions,
        )
        storage = {"name": "storage", "hostPath": {"path": b.local_path_root, "type": "Directory"}}
        pod = kb.PodOptions(node_name=node, restart_policy="Never", volumes=self._volumes([storage]))
        self._cronjob(
            name, b.schedules.pvc, [main], pod, deadline=4 * 3600, exception_reason=exceptions.reason
        )

    def _postgres_backup(self) -> None:
        s, b = self._args.settings, self._args.settings.enabled_backups
        pg_env = {**self._pg_env(), "DUMP_DIR": SCRATCH, "SCRIPTS_DIR": "/scripts"}
        dump = kb.container(
            "dump",
            b.images.postgres_client_image,
            b.resources,
            command=["sh", "/scripts/postgres-dump.sh"],
            env=pg_env,
            env_from_secrets={"PGPASSWORD": (DB_SECRET, "PGPASSWORD")},
            volume_mounts=self.PG_MOUNTS,
            run_as_user=POSTGRES_UID,
        )
        ship = kb.container(
            "ship",
            b.images.rsync_image,
            b.resources,
            command=["sh", "/scripts/postgres-ship.sh"],
            env={**self._nas_env(b.postgres_path), "DUMP_DIR": SCRATCH, "PGDATABASE": pg_env["PGDATABASE"]},
            volume_mounts=self.NAS_MOUNTS,
            run_as_user=NOBODY,
        )
        pod = kb.PodOptions(
            node_name=s.placement.backups,
            restart_policy="Never",
            fs_group=NOBODY,
            init_containers=[dump],
            volumes=self._volumes(),
        )
        self._cronjob("postgres-backup", b.schedules.postgres, [ship], pod, deadline=2 * 3600)
        self._postgres_flow("postgres-backup")

    def _restore_drill(self, sqlite_volumes: Sequence[StatefulVolume]) -> None:
        s, b = self._args.settings, self._args.settings.enabled_backups
        sqlite_keys = " ".join(volume_key(v) for v in sorted(sqlite_volumes, key=volume_key))
        pg_env = self._pg_env()
        fetch = kb.container(
            "fetch",
            b.images.rsync_image,
            b.resources,
            command=["sh", "/scripts/drill-fetch.sh"],
            env={
                **self._nas_env(b.postgres_path),
                "WORK": SCRATCH,
                "PG_BASE": b.postgres_path,
                "VOLUMES_BASE": b.volumes_path,
                "PGDATABASE": pg_env["PGDATABASE"],
                "SQLITE_VOLUMES": sqlite_keys,
            },
            volume_mounts=self.NAS_MOUNTS,
            run_as_user=NOBODY,
        )
        init = [fetch]
        if sqlite_keys:
            init.append(
                kb.container(
                    "sqlite-check",
                    b.images.sqlite_image,
                    b.resources,
                    command=["sh", "/scripts/drill-sqlite.sh"],
                    env={"WORK": SCRATCH, "SQLITE_VOLUMES": sqlite_keys},
                    volume_mounts=self.PG_MOUNTS,
                    run_as_user=NOBODY,
                )
            )
        check = kb.container(
            "postgres-check",
            b.images.postgres_client_image,
            b.resources,
            command=["sh", "/scripts/drill-postgres.sh"],
            env={
                **pg_env,
                "SCRIPTS_DIR": "/scripts",
                "DUMP": f"{SCRATCH}/db.dump",
                "DRILL_DB": DRILL_DB,
                "TABLES": " ".join(b.drill_tables),
            },
            env_from_secrets={"PGPASSWORD": (DB_SECRET, "PGPASSWORD")},
            volume_mounts=self.PG_MOUNTS,
            run_as_user=POSTGRES_UID,
        )
        pod = kb.PodOptions(
            node_name=s.placement.backups,
            restart_policy="Never",
            fs_group=NOBODY,
            init_containers=init,
            volumes=self._volumes(),
        )
        self._cronjob("restore-drill", b.schedules.restore_drill, [check], pod, deadline=3 * 3600)
        self._postgres_flow("restore-drill")

    def _postgres_flow(self, job: str) -> None:
        a = self._args
        if a.postgres_pods is not None:
            namespace, pods = a.postgres_pods
            a.flows.add(
                Flow(
                    f"{job}-to-postgresql",
                    Peer(NAMESPACE, kb.selector(job, "backup")),
                    namespace,
                    pods,
                    (5432,),
                )
            )
