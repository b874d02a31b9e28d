"""Media and backups as the program registers them: placement, Recreate, NFS volumes, Retain,
protection, chart values, schedules, and a backup set derived from the declared volumes."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components import backups as backups_mod
from components.media import Media
from components.routes import Route, RouteRegistry
from components.volumes import StatefulVolume, VolumeRegistry, stateful_pvc
from config.settings import SettingsError, image_major, parse
from tests.conftest import SCHEMAS, raw_config
from tools import mockrun

PI5 = "pi-k3s"


def pod(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return obj["spec"]["template"]["spec"]


def containers(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = pod(obj)
    return {c["name"]: c for c in spec.get("initContainers", []) + spec["containers"]}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


# -- Jellyfin ----------------------------------------------------------------------------------


def test_jellyfin_deployment(pi_k3s: mockrun.Result) -> None:
    dep = pi_k3s.manifest("Deployment", "jellyfin", "jellyfin")
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    assert pod(dep)["nodeSelector"] == {"kubernetes.io/hostname": PI5}
    c = containers(dep)["jellyfin"]
    assert c["image"] == "jellyfin/jellyfin:10.11.8"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == "/health"
    assert c["resources"]["requests"] == {"cpu": "500m", "memory": "512Mi"}
    assert c["resources"]["limits"]["memory"] == "2Gi"
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/media"]["readOnly"] is True
    claims = {v["name"]: v.get("persistentVolumeClaim") for v in pod(dep)["volumes"]}
    assert claims["config"] == {"claimName": "jellyfin-config"}
    assert claims["video"] == {"claimName": "jellyfin-video", "readOnly": True}


def test_jellyfin_transcodes_have_room_for_a_film(pi_k3s: mockrun.Result) -> None:
    """Transcodes (<cache>/transcodes in Jellyfin 10.11.8) on their own volume of
    media.jellyfin.transcodeSize, not inside the 2Gi cache whose overflow evicts the pod."""
    dep = pi_k3s.manifest("Deployment", "jellyfin", "jellyfin")
    c = containers(dep)["jellyfin"]
    assert env_of(c)["JELLYFIN_CACHE_DIR"] == "/cache"
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod(dep)["volumes"]}
    transcodes = volumes[mounts["/cache/transcodes"]]
    assert transcodes["emptyDir"]["sizeLimit"] == "8Gi"
    assert mounts["/cache/transcodes"] != mounts["/cache"]


def test_a_transcode_volume_too_small_for_a_film_is_rejected() -> None:
    raw = raw_config()
    raw["media"]["jellyfin"]["transcodeSize"] = "2Gi"
    with pytest.raises(SettingsError, match=r"pi-cluster:media.jellyfin.transcodeSize.*2Gi is less than 8Gi"):
        parse(raw)


def _segment_init(pi_k3s: mockrun.Result) -> list[str]:
    dep = pi_k3s.manifest("Deployment", "jellyfin", "jellyfin")
    init = containers(dep)["segment-deletion"]
    assert init["image"] == containers(dep)["jellyfin"]["image"]
    assert {"name": "config", "mountPath": "/config"} in init["volumeMounts"]
    return init["command"]


XML_HEAD = '<?xml version="1.0" encoding="utf-8"?>\n<EncodingOptions>\n'
KEEP = "  <SegmentKeepSeconds>720</SegmentKeepSeconds>\n"


@pytest.mark.parametrize(
    "before",
    [
        None,  # first start: no encoding.xml yet
        XML_HEAD + "  <EnableSegmentDeletion>false</EnableSegmentDeletion>\n" + KEEP + "</EncodingOptions>\n",
        XML_HEAD + KEEP + "</EncodingOptions>\n",
    ],
    ids=["missing", "off", "absent"],
)
def test_jellyfin_segment_deletion_is_turned_on(
    pi_k3s: mockrun.Result, tmp_path: Path, before: str | None
) -> None:
    import xml.etree.ElementTree as ET

    from tests.conftest import require_tool

    busybox = require_tool("busybox")
    command = _segment_init(pi_k3s)
    assert command[:2] == ["sh", "-c"]
    # The /config volume as the image lays it out (jellyfin-packaging docker/Dockerfile v10.11.8:
    # JELLYFIN_CONFIG_DIR=/config/config); on a first start the volume is empty.
    volume = tmp_path / "volume"
    volume.mkdir()
    config = volume / "config"
    if before is not None:
        config.mkdir()
        (config / "encoding.xml").write_text(before)
    assert "/config/config/encoding.xml" in command[2]
    script = command[2].replace("/config/", f"{volume}/")
    run = subprocess.run([busybox, "sh", "-c", script], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    root = ET.fromstring((config / "encoding.xml").read_text())
    assert root.tag == "EncodingOptions"
    assert [e.text for e in root.iter("EnableSegmentDeletion")] == ["true"]
    if before is not None and "SegmentKeepSeconds" in before:
        assert root.findtext("SegmentKeepSeconds") == "720"  # the rest untouched
    # idempotent: a second start changes nothing
    text = (config / "encoding.xml").read_text()
    assert subprocess.run([busybox, "sh", "-c", script], check=False).returncode == 0
    assert (config / "encoding.xml").read_text() == text


def test_jellyfin_requests_fit_the_pi5(pi_k3s: mockrun.Result) -> None:
    from config.types import memory_bytes

    s = parse({k.split(":", 1)[1]: v for k, v in mockrun.stack_config("pi-k3s")[0].items()})
    node = s.node(s.placement.jellyfin)
    assert memory_bytes(s.media.jellyfin.resources.memory_limit) < memory_bytes(node.hardware.memory) / 2


def test_video_share_is_a_read_only_retained_nfs_volume(pi_k3s: mockrun.Result) -> None:
    pv = pi_k3s.manifest("PersistentVolume", "jellyfin-video")
    assert pv["spec"]["nfs"] == {"server": "192.168.1.60", "path": "/volume1/video", "readOnly": True}
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert "nfsvers=3" in pv["spec"]["mountOptions"] and "ro" in pv["spec"]["mountOptions"]
    pvc = pi_k3s.manifest("PersistentVolumeClaim", "jellyfin-video", "jellyfin")
    assert pvc["spec"]["volumeName"] == "jellyfin-video" and pvc["spec"]["storageClassName"] == ""


def test_immich_library_is_a_shared_retained_nfs_volume(pi_k3s: mockrun.Result) -> None:
    pv = pi_k3s.manifest("PersistentVolume", "immich-library")
    assert pv["spec"]["nfs"] == {
        "server": "192.168.1.60",
        "path": "/volume1/immich-library",
        "readOnly": False,
    }
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["spec"]["accessModes"] == ["ReadWriteMany"]
    assert "nfsvers=3" in pv["spec"]["mountOptions"]


def test_nfs_version_comes_from_settings() -> None:
    media = copy.deepcopy(mockrun.stack_config("pi-k3s")[0]["pi-cluster:media"])
    media["nfsVersion"] = "4.1"
    result = mockrun.run(overrides={"pi-cluster:media": media})
    for name in ("jellyfin-video", "immich-library"):
        assert "nfsvers=4.1" in result.manifest("PersistentVolume", name)["spec"]["mountOptions"]


def test_every_persistent_volume_and_claim_is_protected(pi_k3s: mockrun.Result) -> None:
    kinds = ("kubernetes:core/v1:PersistentVolume", "kubernetes:core/v1:PersistentVolumeClaim")
    regs = [r for r in pi_k3s.registrations if r.type in kinds]
    assert len(regs) >= 7
    assert [r.key for r in regs if not r.protect] == []


def test_stateful_claims_are_sized_as_settings_say(pi_k3s: mockrun.Result) -> None:
    sizes = {
        ("jellyfin", "jellyfin-config"): "5Gi",
        ("immich", "immich-postgresql-data"): "5Gi",
        ("immich", "immich-valkey-data"): "1Gi",
    }
    for (ns, name), size in sizes.items():
        pvc = pi_k3s.manifest("PersistentVolumeClaim", name, ns)
        assert pvc["spec"]["resources"]["requests"]["storage"] == size
        assert pvc["spec"]["storageClassName"] == "local-path"


# -- routes --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def routes(monkeypatch_module: pytest.MonkeyPatch) -> dict[str, Route]:
    seen: dict[str, Route] = {}
    original = RouteRegistry.add

    def spy(self: RouteRegistry, route: Route) -> Route:
        seen[route.name] = route
        return original(self, route)

    monkeypatch_module.setattr(RouteRegistry, "add", spy)
    mockrun.run()
    return seen


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_routes(routes: dict[str, Route], pi_k3s: mockrun.Result) -> None:
    j, i = routes["jellyfin"], routes["immich"]
    assert (j.namespace, j.service, j.port, j.body_size, j.health_path) == (
        "jellyfin",
        "jellyfin",
        8096,
        "0",
        "/health",
    )
    assert (i.namespace, i.service, i.port, i.body_size) == ("immich", "immich-server", 2283, "0")
    assert i.read_timeout is not None and i.read_timeout >= 600 and i.send_timeout == i.read_timeout
    assert pi_k3s.outputs["urls"]["immich"] == "https://immich.lab.mtgibbs.dev"


# -- Immich --------------------------------------------------------------------------------------


def immich(pi_k3s: mockrun.Result) -> mockrun.Registration:
    return pi_k3s.get("kubernetes:helm.sh/v3:Release", "media-immich")


def test_immich_chart_is_pinned(pi_k3s: mockrun.Result) -> None:
    inputs = immich(pi_k3s).plain_inputs
    assert (inputs["chart"], inputs["version"]) == ("immich", "0.10.3")
    assert inputs["repositoryOpts"]["repo"] == "https://immich-app.github.io/immich-charts"
    assert inputs["namespace"] == "immich"


def test_immich_values(pi_k3s: mockrun.Result) -> None:
    values = immich(pi_k3s).plain_inputs["values"]
    assert values["machine-learning"]["enabled"] is False
    assert values["controllers"]["main"]["containers"]["main"]["image"]["tag"] == "v2.4.1"
    assert values["immich"]["persistence"]["library"]["existingClaim"] == "immich-library"
    assert values["defaultPodOptions"]["nodeSelector"] == {"kubernetes.io/hostname": PI5}
    valkey = values["valkey"]
    assert valkey["enabled"] is True
    assert valkey["persistence"]["data"] == {
        "enabled": True,
        "type": "persistentVolumeClaim",
        "existingClaim": "immich-valkey-data",
    }
    env = values["server"]["controllers"]["main"]["containers"]["main"]["env"]
    assert env["DB_HOSTNAME"] == "immich-postgresql.immich.svc.cluster.local"
    assert env["DB_VECTOR_EXTENSION"] == "vectorchord"
    assert env["DB_PASSWORD"] == {"valueFrom": {"secretKeyRef": {"name": "immich-db", "key": "DB_PASSWORD"}}}
    assert env["IMMICH_MACHINE_LEARNING_ENABLED"] == "false"
    assert env["TZ"] == "America/New_York"


def test_machine_learning_can_be_turned_on() -> None:
    media = copy.deepcopy(mockrun.stack_config("pi-k3s")[0]["pi-cluster:media"])
    media["immich"]["machineLearning"] = True
    values = immich(mockrun.run(overrides={"pi-cluster:media": media})).plain_inputs["values"]
    ml = values["machine-learning"]
    assert ml["enabled"] is True
    # the namespace enforces the restricted Pod Security Standard
    security = ml["controllers"]["main"]["containers"]["main"]["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}


def _chart_values_keys() -> set[str]:
    """Top-level keys of the pinned immich chart's values.yaml, as `make crd-schemas` recorded
    them from the chart package (tests/test_crd_schemas.py keeps the record at the stack's pin)."""
    charts = json.loads((SCHEMAS / "charts.json").read_text())["charts"]
    return set(charts["immich"]["valuesKeys"])


# Top-level keys of bjw-s common 4.x that the chart passes through to every component.
COMMON_KEYS = {"defaultPodOptions", "controllers", "persistence", "service", "global"}
IMMICH_KEYS = {"controllers", "immich", "valkey", "server", "machine-learning"}


def test_immich_values_use_only_keys_the_chart_reads(pi_k3s: mockrun.Result) -> None:
    values = immich(pi_k3s).plain_inputs["values"]
    assert set(values) <= IMMICH_KEYS | COMMON_KEYS
    assert set(values["immich"]) <= {"metrics", "persistence", "configuration"}


def test_immich_key_list_matches_the_pinned_chart() -> None:
    """The allow-list above is the chart's own values.yaml at the pinned version."""
    assert _chart_values_keys() == IMMICH_KEYS


def test_postgres_shared_buffers_fit_its_memory_limit(pi_k3s: mockrun.Result) -> None:
    """The image's postgresql.ssd.conf sets shared_buffers=512MB, half of a 1Gi limit; the
    container's args (the image's CMD and -c, which outranks the file) give a quarter."""
    from components.media import postgres_shared_buffers
    from config.types import memory_bytes

    c = containers(pi_k3s.manifest("Deployment", "immich-postgresql", "immich"))["postgres"]
    args = c["args"]
    assert args[:3] == ["postgres", "-c", "config_file=/etc/postgresql/postgresql.conf"]
    settings = dict(a.split("=", 1) for a in args[3:] if a != "-c")
    assert settings["shared_buffers"] == "256MB"
    limit = memory_bytes(c["resources"]["limits"]["memory"])
    assert int(settings["shared_buffers"].removesuffix("MB")) * 2**20 <= limit // 4
    assert postgres_shared_buffers("2Gi") == "512MB" and postgres_shared_buffers("512Mi") == "128MB"


def test_postgres(pi_k3s: mockrun.Result) -> None:
    dep = pi_k3s.manifest("Deployment", "immich-postgresql", "immich")
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    assert pod(dep)["nodeSelector"] == {"kubernetes.io/hostname": PI5}
    c = containers(dep)["postgres"]
    assert c["image"] == "ghcr.io/immich-app/postgres:14-vectorchord0.4.3-pgvectors0.2.0"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["exec"]["command"][0] == "pg_isready"
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod(dep)["volumes"]}
    # immich's entrypoint writes /etc/postgresql/postgresql.conf; the root filesystem is read-only
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert "emptyDir" in volumes[mounts["/etc/postgresql"]]
    env = env_of(c)
    assert env["POSTGRES_PASSWORD"] == {"secretKeyRef": {"name": "immich-db", "key": "DB_PASSWORD"}}
    svc = pi_k3s.manifest("Service", "immich-postgresql", "immich")
    assert svc["spec"]["ports"][0]["port"] == 5432


def test_immich_secret_comes_from_1password(pi_k3s: mockrun.Result) -> None:
    es = pi_k3s.manifest("ExternalSecret", "immich-db", "immich")
    assert es["spec"]["data"] == [{"secretKey": "DB_PASSWORD", "remoteRef": {"key": "immich/db-password"}}]


# -- backups -------------------------------------------------------------------------------------


def test_schedules_and_placement(pi_k3s: mockrun.Result) -> None:
    expected = {"pvc-backup": "0 2 * * 0", "postgres-backup": "30 2 * * 0", "restore-drill": "0 5 * * 0"}
    for name, schedule in expected.items():
        cj = pi_k3s.manifest("CronJob", name, "backup-jobs")
        assert cj["spec"]["schedule"] == schedule
        assert cj["spec"]["timeZone"] == "America/New_York"
        assert cj["spec"]["concurrencyPolicy"] == "Forbid"
        assert cj["spec"]["jobTemplate"]["spec"]["backoffLimit"] == 0, "a failure is a failed Job"
        assert pod(cj)["nodeSelector"] == {"kubernetes.io/hostname": PI5}
        assert pod(cj)["restartPolicy"] == "Never"


def test_pvc_backup_reads_local_path_read_only(pi_k3s: mockrun.Result) -> None:
    cj = pi_k3s.manifest("CronJob", "pvc-backup", "backup-jobs")
    host = next(v for v in pod(cj)["volumes"] if v["name"] == "storage")
    assert host["hostPath"] == {"path": "/var/lib/rancher/k3s/storage", "type": "Directory"}
    c = containers(cj)["pvc-backup"]
    assert {"name": "storage", "mountPath": "/storage", "readOnly": True} in c["volumeMounts"]
    assert c["image"] == "instrumentisto/rsync-ssh:alpine3.23-r3"
    assert c["command"] == ["sh", "/scripts/pvc-backup.sh"]
    env = env_of(c)
    assert env["NAS_HOST"] == "192.168.1.60" and env["NAS_BASE"] == "/volume1/backups/pi-cluster/volumes"
    assert env["RETENTION"] == "4"


def _declared_stateful() -> tuple[set[str], mockrun.Result]:
    """Run the program, recording every volume any component declares stateful."""
    seen: set[str] = set()
    original = VolumeRegistry.add

    def spy(self: VolumeRegistry, volume: StatefulVolume) -> None:
        seen.add(f"{volume.namespace}_{volume.name}")
        original(self, volume)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(VolumeRegistry, "add", spy)
        result = mockrun.run()
    return seen, result


def backed_up(result: mockrun.Result) -> set[str]:
    out: set[str] = set()
    for cj in result.manifests("CronJob"):
        if cj["metadata"]["name"].startswith("pvc-backup"):
            out |= set(env_of(containers(cj)["pvc-backup"])["VOLUMES"].split())
    return out


def test_backed_up_set_equals_declared_stateful_set() -> None:
    declared, result = _declared_stateful()
    assert declared >= {
        "jellyfin_jellyfin-config",
        "immich_immich-postgresql-data",
        "immich_immich-valkey-data",
    }
    assert backed_up(result) == declared


def test_a_newly_declared_volume_is_backed_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """An app that declares one more stateful volume (here: a SQLite one on another node) is
    copied by the next backup and checked by the drill, with no edit to the backup component."""
    original = Media.__init__

    def with_extra(self: Media, name: str, args: Any, opts: Any = None) -> None:
        original(self, name, args, opts)
        for vol, node in (("extra-data", PI5), ("kuma-data", "pi3-worker-2")):
            stateful_pvc(
                args.volumes,
                name=vol,
                namespace="extra",
                size="1Gi",
                node=node,
                sqlite=vol == "kuma-data",
                resource_name=f"test-{vol}",
                opts=pulumi.ResourceOptions(parent=self, provider=args.provider),
            )

    monkeypatch.setattr(Media, "__init__", with_extra)
    declared, result = _declared_stateful()
    assert {"extra_extra-data", "extra_kuma-data"} <= declared
    assert backed_up(result) == declared
    other = result.manifest("CronJob", "pvc-backup-pi3-worker-2", "backup-jobs")
    assert pod(other)["nodeSelector"] == {"kubernetes.io/hostname": "pi3-worker-2"}
    assert "extra_kuma-data" in env_of(containers(other)["pvc-backup"])["VOLUMES"].split()
    drill = containers(result.manifest("CronJob", "restore-drill", "backup-jobs"))
    assert "extra_kuma-data" in env_of(drill["sqlite-check"])["SQLITE_VOLUMES"].split()


def test_backup_plan_is_derived_from_the_registry() -> None:
    reg = VolumeRegistry()
    reg.add(StatefulVolume("a", "one", "1Gi", "n1"))
    reg.add(StatefulVolume("b", "two", "1Gi", "n2", sqlite=True))
    reg.add(StatefulVolume("a", "three", "1Gi", "n1"))
    plan = backups_mod.backup_plan(reg.freeze())
    assert {n: [backups_mod.volume_key(v) for v in vs] for n, vs in plan.items()} == {
        "n1": ["a_one", "a_three"],
        "n2": ["b_two"],
    }
    with pytest.raises(ValueError, match="declared after backups read the registry"):
        reg.add(StatefulVolume("c", "late", "1Gi", "n1"))
    with pytest.raises(ValueError, match="has no node"):
        backups_mod.backup_plan([StatefulVolume("a", "net", "1Gi", None)])
    assert backups_mod.cronjob_name("n1", "n1") == "pvc-backup"
    assert backups_mod.cronjob_name("n2", "n1") == "pvc-backup-n2"


def test_postgres_backup_client_matches_server(pi_k3s: mockrun.Result) -> None:
    cj = pi_k3s.manifest("CronJob", "postgres-backup", "backup-jobs")
    dump = containers(cj)["dump"]
    db = containers(pi_k3s.manifest("Deployment", "immich-postgresql", "immich"))["postgres"]
    assert image_major(dump["image"]) == image_major(db["image"]) == "14"
    assert dump["command"] == ["sh", "/scripts/postgres-dump.sh"]
    assert env_of(dump)["PGHOST"] == "immich-postgresql.immich.svc.cluster.local"
    assert env_of(dump)["PGPASSWORD"] == {"secretKeyRef": {"name": "postgres-backup", "key": "PGPASSWORD"}}
    ship = containers(cj)["ship"]
    assert env_of(ship)["NAS_BASE"] == "/volume1/backups/pi-cluster/postgres"


def test_restore_drill_steps(pi_k3s: mockrun.Result) -> None:
    cj = pi_k3s.manifest("CronJob", "restore-drill", "backup-jobs")
    steps = containers(cj)
    assert pod(cj)["initContainers"][0]["name"] == "fetch"
    check = steps["postgres-check"]
    assert env_of(check)["DRILL_DB"] == "restore_drill" and env_of(check)["TABLES"] == "asset user"
    assert env_of(check)["DRILL_DB"] != env_of(check)["PGDATABASE"]


def test_ssh_checks_the_nas_host_key(pi_k3s: mockrun.Result) -> None:
    cm = pi_k3s.manifest("ConfigMap", "nas-known-hosts", "backup-jobs")
    stack = mockrun.stack_config("pi-k3s")[0]["pi-cluster:backups"]
    assert cm["data"]["known_hosts"] == stack["knownHosts"] + "\n"
    es = pi_k3s.manifest("ExternalSecret", "nas-ssh", "backup-jobs")
    assert es["spec"]["data"] == [
        {"secretKey": "ssh-privatekey", "remoteRef": {"key": "nas-backup/private-key"}}
    ]
    scripts = pi_k3s.manifest("ConfigMap", "backup-scripts", "backup-jobs")["data"]
    assert set(scripts) == set(backups_mod.SCRIPT_FILES)
    assert "StrictHostKeyChecking=yes" in scripts["backup-lib.sh"]
    assert all("StrictHostKeyChecking=no" not in text for text in scripts.values())


def test_only_pvc_backup_runs_as_root(pi_k3s: mockrun.Result) -> None:
    for cj in pi_k3s.manifests("CronJob"):
        for name, c in containers(cj).items():
            root = c["securityContext"]["runAsNonRoot"] is False
            assert root == (name == "pvc-backup"), name


# -- bad input at preview -------------------------------------------------------------------------


BAD = [
    ("media", ["jellyfin", "videoPath"], "volume1/video", "pi-cluster:media.jellyfin.videoPath"),
    ("media", ["immich", "libraryPath"], "/volume1/../etc", "pi-cluster:media.immich.libraryPath"),
    ("media", ["nfsVersion"], "5", "pi-cluster:media.nfsVersion"),
    ("backups", ["schedules", "pvc"], "61 2 * * 0", "pi-cluster:backups.schedules.pvc"),
    ("backups", ["schedules", "postgres"], "30 2 * *", "pi-cluster:backups.schedules.postgres"),
    ("backups", ["schedules", "restoreDrill"], "every sunday", "pi-cluster:backups.schedules.restoreDrill"),
    ("backups", ["schedules", "pvc"], "0 5-2 * * 0", "pi-cluster:backups.schedules.pvc"),
    ("backups", ["retention"], 0, "pi-cluster:backups.retention"),
    ("backups", ["volumesPath"], "relative/path", "pi-cluster:backups.volumesPath"),
    (
        "backups",
        ["images", "postgresClientImage"],
        "postgres:16.8-bookworm",
        "pi-cluster:backups.images.postgresClientImage",
    ),
    (
        "backups",
        ["images", "rsyncImage"],
        "instrumentisto/rsync-ssh:latest",
        "pi-cluster:backups.images.rsyncImage",
    ),
    (
        "backups",
        ["knownHosts"],
        "192.168.1.61 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPpIwLbURLz5WeLsWRqDuwaZzL126Y6leTIQF8j+lhnQ",
        "pi-cluster:backups.knownHosts",
    ),
    ("backups", ["knownHosts"], "192.168.1.60 ssh-ed25519 bm90IGEga2V5", "pi-cluster:backups.knownHosts"),
    ("backups", ["drillTables"], ['asset"; DROP'], "pi-cluster:backups.drillTables[0]"),
    ("backups", ["nas"], "synology", "pi-cluster:backups.nas"),
    ("media", ["immich", "database", "vectorExtension"], "pgvector", "vectorExtension"),
    ("placement", ["immich"], "pi9", "pi-cluster:placement.immich"),
]


@pytest.mark.parametrize(
    ("section", "path", "value", "key"), BAD, ids=[f"{b[0]}.{'.'.join(b[1])}={b[2]}" for b in BAD]
)
def test_bad_input_is_rejected(section: str, path: list[str], value: Any, key: str) -> None:
    raw = raw_config()
    target = raw[section]
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    with pytest.raises(SettingsError) as err:
        parse(raw)
    assert key in str(err.value)
    shown = str(value if not isinstance(value, list) else value[0])
    assert shown[:12] in str(err.value) or f"'{shown.rpartition(':')[2]}'" in str(err.value)


@pytest.mark.parametrize("schedule", ["0 2 * * 0", "*/15 * * * *", "30 2 1,15 * 1-5", "0 0 * * 7"])
def test_good_cron_schedules_pass(schedule: str) -> None:
    raw = raw_config()
    raw["backups"]["schedules"]["pvc"] = schedule
    assert parse(raw).backups.schedules.pvc == schedule


def test_bad_schedule_stops_the_program_before_any_resource() -> None:
    backups = copy.deepcopy(mockrun.stack_config("pi-k3s")[0]["pi-cluster:backups"])
    backups["schedules"]["pvc"] = "0 25 * * 0"
    with pytest.raises(SettingsError, match=r"pi-cluster:backups.schedules.pvc: '0 25 \* \* 0'"):
        mockrun.run(overrides={"pi-cluster:backups": backups})


def test_namespaces_pod_security(pi_k3s: mockrun.Result) -> None:
    for name in ("jellyfin", "immich"):
        labels = pi_k3s.manifest("Namespace", name)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    ns = pi_k3s.manifest("Namespace", "backup-jobs")["metadata"]
    assert ns["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert "hostPath" in ns["annotations"]["pi-cluster/pod-security-reason"]
