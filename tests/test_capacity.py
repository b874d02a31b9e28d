"""The capacity proof: placement, failures naming node and figures, headroom and N-1 warnings."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components import capacity
from components.capacity import CapacityError, Workload, WorkloadRegistry, from_values
from config.settings import Settings, SettingsError, parse
from tests.conftest import raw_config
from tools import mockrun


def res(cpu: str, mem: str, limit: str, cpu_limit: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"requests": {"cpu": cpu, "memory": mem}, "limits": {"memory": limit}}
    if cpu_limit:
        out["limits"]["cpu"] = cpu_limit
    return out


def seed(settings: Settings) -> list[Workload]:
    """The seed's workloads with the requests in ARCHITECTURE.md, plus ESO as configured."""
    eso = settings.secrets.resources.spec()
    return [
        from_values(
            "pihole", "pihole", res("100m", "128Mi", "512Mi", "500m"), node=settings.placement.pihole
        ),
        from_values(
            "unbound", "pihole", res("50m", "64Mi", "256Mi", "500m"), node=settings.placement.unbound
        ),
        from_values("pihole-exporter", "pihole", res("10m", "32Mi", "64Mi", "100m")),
        *(from_values(n, "external-secrets", eso) for n in ("eso", "eso-webhook", "eso-cert")),
    ]


def test_quantities() -> None:
    assert capacity.memory("512Mi") == 512 * 2**20
    assert capacity.memory("1G") == 10**9
    assert capacity.memory(1024) == 1024
    assert capacity.cpu("250m") == 250
    assert capacity.cpu("0.5") == 500
    assert capacity.cpu(2) == 2000
    with pytest.raises(ValueError):
        capacity.memory("lots")


def test_pod_size_sums_containers_and_takes_the_larger_init() -> None:
    pod = capacity.PodSize.of(
        [{"resources": res("100m", "100Mi", "200Mi")}, {"resources": res("50m", "50Mi", "100Mi")}],
        [{"resources": res("10m", "400Mi", "400Mi")}],
    )
    assert pod.cpu_request == 150 and pod.memory_request == 400 * 2**20
    assert pod.memory_limit == 300 * 2**20 and pod.cpu_limit == 0  # a container without: unbounded


def test_allocatable_is_hardware_minus_reserve(settings: Settings) -> None:
    nodes = {n.name: n for n in capacity.nodes_of(settings)}
    assert nodes["pi-k3s"].allocatable_memory == (8192 - 1024) * 2**20
    assert nodes["pi3-worker-1"].allocatable_memory == (1024 - 320) * 2**20
    assert nodes["pi3-worker-1"].allocatable_cpu == 3750


def test_the_seed_fits_the_seed_hardware(settings: Settings) -> None:
    result = capacity.plan(settings, seed(settings))
    assert result.errors == []
    assert result.warnings == []
    pods = {name: row["pods"] for name, row in result.table().items()}
    assert "pihole/pihole" in pods["pi-k3s"]
    assert "pihole/unbound" in pods["pi3-worker-1"]


def test_a_2gib_limit_pinned_to_a_pi3_fails_naming_node_and_figures(settings: Settings) -> None:
    hog = from_values("hog", "apps", res("100m", "256Mi", "2Gi"), node="pi3-worker-2")
    result = capacity.plan(settings, [*seed(settings), hog])
    assert len(result.errors) == 1
    assert "node pi3-worker-2" in result.errors[0]
    assert "2048Mi" in result.errors[0] and "704Mi" in result.errors[0]


def test_one_workload_too_many_fails_naming_node_and_figures(settings: Settings) -> None:
    extra = [
        from_values(f"app{i}", "apps", res("50m", "220Mi", "220Mi"), node="pi3-worker-1") for i in range(3)
    ]
    assert capacity.plan(settings, [*seed(settings), *extra[:2]]).errors == []
    result = capacity.plan(settings, [*seed(settings), *extra])
    assert len(result.errors) == 1
    message = result.errors[0]
    assert message.startswith("node pi3-worker-1:")
    assert "memory 724Mi of 704Mi allocatable" in message  # Unbound 64Mi + 3 x 220Mi
    assert "1024Mi minus the reserve" in message
    assert "apps/app2 220Mi" in message


def test_enforce_raises_a_settings_error_and_warns(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    warned: list[str] = []
    monkeypatch.setattr(capacity.pulumi.log, "warn", lambda msg, *a, **k: warned.append(msg))
    reg = WorkloadRegistry()
    reg.add(from_values("big", "apps", res("100m", "600Mi", "600Mi"), node="pi3-worker-1"))
    capacity.enforce(settings, reg)
    assert any("headroom" in w and "pi3-worker-1" in w for w in warned)
    reg.add(from_values("bigger", "apps", res("100m", "600Mi", "600Mi"), node="pi3-worker-1"))
    with pytest.raises(SettingsError) as info:
        capacity.enforce(settings, reg)
    assert isinstance(info.value, CapacityError)
    assert "node pi3-worker-1" in str(info.value) and "1200Mi of 704Mi" in str(info.value)


def test_movable_pods_spread_like_the_scheduler(settings: Settings) -> None:
    few = capacity.plan(settings, [from_values("app", "apps", res("100m", "256Mi", "256Mi"), replicas=4)])
    assert len(few.table()["pi-k3s"]["pods"]) == 4  # the least allocated node, by fraction
    many = capacity.plan(settings, [from_values("app", "apps", res("100m", "256Mi", "256Mi"), replicas=16)])
    assert many.errors == []
    assert all(row["pods"] for row in many.table().values())  # then the Pi 3s take their share


def test_daemonsets_land_on_every_eligible_node(settings: Settings) -> None:
    ds = from_values("exporter", "monitoring", res("10m", "32Mi", "64Mi"), daemonset=True)
    only_pi3 = from_values(
        "pi3-only",
        "monitoring",
        res("10m", "16Mi", "16Mi"),
        daemonset=True,
        node_selector={"pi-cluster/class": "pi3"},
    )
    table = capacity.plan(settings, [ds, only_pi3]).table()
    assert all("monitoring/exporter" in row["pods"] for row in table.values())
    assert "monitoring/pi3-only" not in table["pi-k3s"]["pods"]
    assert "monitoring/pi3-only" in table["pi3-worker-2"]["pods"]


def test_taints_and_affinity_are_respected() -> None:
    raw = raw_config()
    raw["nodes"][1]["taints"] = [{"key": "dedicated", "value": "dns", "effect": "NoSchedule"}]
    s = parse(raw)
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pi-cluster/class", "operator": "In", "values": ["pi3"]}]}
                ]
            }
        }
    }
    w = from_values("w", "apps", res("10m", "16Mi", "16Mi"), replicas=3, affinity=affinity)
    table = capacity.plan(s, [w]).table()
    assert table["pi3-worker-2"]["pods"] and not table["pi3-worker-1"]["pods"] and not table["pi-k3s"]["pods"]
    tolerant = from_values(
        "t",
        "apps",
        res("10m", "16Mi", "16Mi"),
        node="pi3-worker-1",
        tolerations=[{"key": "dedicated", "operator": "Equal", "value": "dns", "effect": "NoSchedule"}],
    )
    assert capacity.plan(s, [tolerant]).errors == []
    intolerant = from_values("i", "apps", res("10m", "16Mi", "16Mi"), node="pi3-worker-1")
    assert "no node matches" in capacity.plan(s, [intolerant]).errors[0]


def test_pinned_to_unknown_node_fails(settings: Settings) -> None:
    w = from_values("w", "apps", res("10m", "16Mi", "16Mi"), node="pi9")
    assert "pinned to node 'pi9'" in capacity.plan(settings, [w]).errors[0]


def test_losing_an_agent_warns_when_its_movable_pods_have_no_room(settings: Settings) -> None:
    apps = [
        from_values("a", "apps", res("100m", "400Mi", "400Mi"), node_selector={"pi-cluster/class": "pi3"}),
        from_values("b", "apps", res("100m", "400Mi", "400Mi"), node_selector={"pi-cluster/class": "pi3"}),
    ]
    result = capacity.plan(settings, apps)
    assert result.errors == []
    assert any(w.startswith("losing node pi3-worker-") and "apps/" in w for w in result.warnings)
    small = [from_values("c", "apps", res("10m", "64Mi", "64Mi"), node_selector={"pi-cluster/class": "pi3"})]
    assert not any(w.startswith("losing") for w in capacity.plan(settings, small).warnings)


def test_registry_refuses_duplicates() -> None:
    reg = WorkloadRegistry()
    reg.add(from_values("a", "apps", res("10m", "16Mi", "16Mi")))
    with pytest.raises(ValueError, match="declared twice"):
        reg.add(from_values("a", "apps", res("10m", "16Mi", "16Mi")))


def test_reserve_settings_are_validated() -> None:
    raw = raw_config()
    del raw["guardrails"]["reserve"]["pi3"]
    with pytest.raises(
        SettingsError, match=r"pi-cluster:guardrails.reserve: no reserve for node class 'pi3'"
    ):
        parse(raw)
    raw = raw_config()
    raw["guardrails"]["reserve"]["pi3"]["memory"] = "2Gi"
    with pytest.raises(SettingsError, match=r"pi-cluster:guardrails.reserve.pi3: .* leaves nothing"):
        parse(raw)
    raw = raw_config()
    raw["guardrails"]["headroom"] = 1.5
    with pytest.raises(SettingsError, match=r"pi-cluster:guardrails.headroom"):
        parse(raw)


# Every component's workloads, as the full stack registers them (one per capability at least).
FULL_STACK_PODS = {
    "pi-k3s": {
        "ingress-nginx/ingress-nginx-controller",
        "monitoring/prometheus-kube-prometheus-stack-prometheus",
        "monitoring/alertmanager-kube-prometheus-stack-alertmanager",
        "monitoring/kube-prometheus-stack-operator",
        "monitoring/kube-prometheus-stack-grafana",
        "node-exporter/kube-prometheus-stack-prometheus-node-exporter",
        "jellyfin/jellyfin",
        "immich/immich-server",
        "immich/immich-valkey",
        "immich/immich-postgresql",
        "uptime-kuma/uptime-kuma",
        "uptime-kuma/autokuma",
        "backup-jobs/pvc-backup",
        "backup-jobs/postgres-backup",
        "backup-jobs/restore-drill",
    },
    "pi3-worker-1": {"node-exporter/kube-prometheus-stack-prometheus-node-exporter"},
    "pi3-worker-2": {"node-exporter/kube-prometheus-stack-prometheus-node-exporter"},
}
MOVABLE = {
    "homepage/homepage",
    "cert-manager/cert-manager",
    "cert-manager/cert-manager-webhook",
    "cert-manager/cert-manager-cainjector",
    "external-secrets/external-secrets",
    "monitoring/kube-prometheus-stack-kube-state-metrics",
}


def _mi(quantity: str) -> int:
    return capacity.memory(quantity) // capacity.MI


def test_the_full_seed_stack_fits_the_seed_hardware(pi_k3s: mockrun.Result) -> None:
    """Through the whole program: every component's workloads placed, and the stack fits."""
    table = pi_k3s.outputs["capacity"]
    assert set(table) == {"pi-k3s", "pi3-worker-1", "pi3-worker-2"}
    for node, pods in FULL_STACK_PODS.items():
        assert pods <= set(table[node]["pods"]), node
    every = {p for row in table.values() for p in row["pods"]}
    assert every >= MOVABLE
    # Non-trivial totals: the server carries ingress, monitoring, media, status and backups.
    assert _mi(table["pi-k3s"]["requested"]["memory"]) > 1024
    for node, row in table.items():
        assert _mi(row["requested"]["memory"]) <= _mi(row["allocatable"]["memory"]), node
        assert capacity.cpu(row["requested"]["cpu"]) <= capacity.cpu(row["allocatable"]["cpu"]), node
        assert row["headroomPercent"] >= 25, node
    # The DNS stack: the primary on the server, the secondary on its Pi 3, two Unbound replicas.
    assert "pihole/pihole" in table["pi-k3s"]["pods"]
    assert "pihole/pihole-2" in table["pi3-worker-2"]["pods"]
    assert {
        "pihole/unbound#0",
        "pihole/unbound#1",
        "pihole/pihole-exporter",
        "pihole/pihole-2-exporter",
    } <= every
    assert table["pi3-worker-1"]["allocatable"] == {"cpu": "3750m", "memory": "704Mi"}


def test_the_dev_stack_fits_its_one_pi5() -> None:
    table = mockrun.run("dev").outputs["capacity"]
    (row,) = table.values()
    assert _mi(row["requested"]["memory"]) > 1024
    assert _mi(row["requested"]["memory"]) <= _mi(row["allocatable"]["memory"])
    assert {
        "uptime-kuma/uptime-kuma",
        "homepage/homepage",
        "monitoring/kube-prometheus-stack-grafana",
    } <= set(row["pods"])


def test_the_program_fails_when_a_2gib_limit_is_pinned_to_a_pi3() -> None:
    """Uptime Kuma placed on a Pi 3 with a 2 GiB limit: the preview fails naming node and figures."""
    values, _ = mockrun.stack_config("pi-k3s")
    status = copy.deepcopy(values["pi-cluster:status"])
    status["resources"]["uptimeKuma"]["memoryLimit"] = "2Gi"
    placement = {**values["pi-cluster:placement"], "status": "pi3-worker-2"}
    with pytest.raises(CapacityError) as info:
        mockrun.run(overrides={"pi-cluster:status": status, "pi-cluster:placement": placement})
    message = str(info.value)
    assert "node pi3-worker-2: workload uptime-kuma/uptime-kuma has a memory limit of 2048Mi" in message
    assert "704Mi allocatable memory" in message


def test_the_program_fails_when_one_workload_too_many_lands_on_a_pi3() -> None:
    """Status on a Pi 3 that already runs Unbound fits; Jellyfin there as well does not."""
    values, _ = mockrun.stack_config("pi-k3s")
    placement = {**values["pi-cluster:placement"], "status": "pi3-worker-1"}
    fits = mockrun.run(overrides={"pi-cluster:placement": placement}).outputs["capacity"]
    assert "uptime-kuma/uptime-kuma" in fits["pi3-worker-1"]["pods"]
    placement["jellyfin"] = "pi3-worker-1"
    with pytest.raises(CapacityError) as info:
        mockrun.run(overrides={"pi-cluster:placement": placement})
    message = str(info.value)
    assert message.count("node pi3-worker-1:") >= 1
    assert "of 704Mi allocatable" in message and "jellyfin/jellyfin" in message


def test_the_program_fails_at_preview_when_a_node_is_too_small() -> None:
    """Through the whole program: ESO's three pods with a 2 GiB limit on a 1 GiB server."""
    values, _ = mockrun.stack_config("pi-k3s")
    nodes = copy.deepcopy(values["pi-cluster:nodes"])
    nodes[0]["hardware"]["memory"] = "1Gi"
    raw = raw_config()
    raw["guardrails"]["reserve"]["pi5"] = {"cpu": "500m", "memory": "256Mi"}
    secrets_cfg = copy.deepcopy(values["pi-cluster:secrets"])
    secrets_cfg["resources"] = {"cpuRequest": "10m", "memoryRequest": "64Mi", "memoryLimit": "2Gi"}
    with pytest.raises(CapacityError) as info:
        mockrun.run(
            overrides={
                "pi-cluster:nodes": nodes,
                "pi-cluster:guardrails": raw["guardrails"],
                "pi-cluster:secrets": secrets_cfg,
            }
        )
    message = str(info.value)
    assert "memory limit of 2048Mi" in message and "above the node's" in message
    assert "node pi-k3s" in message or "node pi3-worker" in message
