"""`make e2e`'s own rules, without a cluster: the e2e stack differs from pi-k3s in exactly the
settings a simulated cluster needs, the simulated nodes are the stack's, the checks name what
they find, and the engine's output is read as the CLI writes it (events captured from a run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.capacity import plan
from config.settings import parse
from e2e import checks, engine, mirror, prepare, run, stand_ins
from e2e import stack as e2e_stack
from policy.policies import MANDATORY_POLICIES
from tests.conftest import ROOT
from tests.test_stack_modes import _mirror
from tools import mockrun

FIXTURES = Path(__file__).parent / "fixtures" / "e2e"


@pytest.fixture(scope="module")
def e2e_values(tmp_path_factory: pytest.TempPathFactory, settings: Any) -> dict[str, Any]:
    base, _ = mockrun.stack_config("pi-k3s")
    folder = _mirror(tmp_path_factory.mktemp("mirror"), settings)
    return e2e_stack.settings_values(base, mirror=folder, plugin_version="4.25.0")


@pytest.fixture(scope="module")
def e2e_run(e2e_values: dict[str, Any]) -> mockrun.Result:
    return mockrun.run(e2e_stack.NAME, config=e2e_values)


def test_the_e2e_stack_is_pi_k3s_but_for_what_a_simulated_cluster_needs(e2e_values: dict[str, Any]) -> None:
    base, _ = mockrun.stack_config("pi-k3s")
    assert set(e2e_stack.differences(base, e2e_values)) == {
        "pi-cluster:existingCluster",
        "pi-cluster:chartMirror",
        "pi-cluster:ephemeralVolumes",
        "pi-cluster:kubernetesPluginVersion",
        "pi-cluster:ingress.cloudflareRecord",
    }
    raw = {k.split(":", 1)[1]: v for k, v in e2e_values.items()}
    s = parse(raw)
    assert (s.existing_cluster, s.ingress.cloudflare_record, s.kubernetes_plugin_version) == (
        True,
        False,
        "4.25.0",
    )
    assert s.ephemeral_volumes == e2e_stack.EPHEMERAL_REASON


def test_the_e2e_stack_registers_no_bootstrap_and_no_cloudflare(e2e_run: mockrun.Result) -> None:
    types = {r.type.split(":")[0] for r in e2e_run.registrations}
    assert types == {"kubernetes", "pi-cluster", "pulumi"}
    assert e2e_run.invokes == []
    assert e2e_run.get("pulumi:providers:kubernetes", "k3s-provider").version == "4.25.0"


def test_the_e2e_config_file_keeps_the_salt_and_never_sits_beside_the_real_stacks(
    tmp_path: Path, e2e_values: dict[str, Any]
) -> None:
    path = tmp_path / "Pulumi.e2e.yaml"
    path.write_text("encryptionsalt: v1:abc\n")
    e2e_stack.write_config(path, e2e_values)
    data = yaml.safe_load(path.read_text())
    assert data["encryptionsalt"] == "v1:abc"
    assert data["config"] == json.loads(json.dumps(e2e_values))
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert {"e2e/out/", "/Pulumi.e2e.yaml"} <= set(ignored)
    assert not (ROOT / "Pulumi.e2e.yaml").exists()
    assert run.DEFAULT_OUT == ROOT / "e2e" / "out"


def test_the_simulated_nodes_are_the_stack_nodes(e2e_run: mockrun.Result) -> None:
    settings = e2e_run.program["settings"]
    nodes = {n.name: n.manifest() for n in prepare.kwok_nodes(settings)}
    assert list(nodes) == [n.name for n in settings.nodes]
    pi3 = nodes["pi3-worker-1"]
    assert pi3["status"]["capacity"]["memory"] == "1Gi"  # a Pi 3 really has 1Gi
    # Allocatable as the capacity proof assumes: hardware minus the class's reserve.
    assert pi3["status"]["allocatable"] == {"cpu": "3750m", "memory": "704Mi", "pods": "110"}  # 1Gi - 320Mi
    server = nodes["pi-k3s"]["metadata"]["labels"]
    assert server["node-role.kubernetes.io/control-plane"] == "true"
    assert server["pi-cluster/class"] == "pi5" and server["kubernetes.io/arch"] == "arm64"
    assert nodes["pi-k3s"]["status"]["nodeInfo"]["kubeletVersion"] == settings.k3s.version


def _pods_as_planned(
    result: mockrun.Result, move: str = ""
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Pods (and ReplicaSets) on the nodes the capacity plan chose, as the API lists them;
    the pods of workload ``move`` on another node."""
    capacity_plan = plan(result.program["settings"], result.program["workloads"].workloads())
    pods, replicasets = [], []
    nodes = list(capacity_plan.loads)
    for node, load in capacity_plan.loads.items():
        for w, i in load.pods:
            if not (w.node or w.daemonset):
                continue
            on = next(n for n in nodes if n != node) if w.key == move else node
            owner = {"kind": w.kind, "name": w.name, "controller": True}
            if w.kind == "Deployment":
                owner = {"kind": "ReplicaSet", "name": f"{w.name}-abc", "controller": True}
                replicasets.append(
                    {
                        "metadata": {
                            "name": f"{w.name}-abc",
                            "namespace": w.namespace,
                            "ownerReferences": [{"kind": "Deployment", "name": w.name, "controller": True}],
                        }
                    }
                )
            pods.append(
                {
                    "metadata": {
                        "name": f"{w.name}-{i}",
                        "namespace": w.namespace,
                        "ownerReferences": [owner],
                    },
                    "spec": {"nodeName": on},
                    "status": {"phase": "Running"},
                }
            )
    return pods, replicasets


def test_pinned_pods_where_the_capacity_proof_put_them_pass(e2e_run: mockrun.Result) -> None:
    pods, replicasets = _pods_as_planned(e2e_run)
    capacity_plan = plan(e2e_run.program["settings"], e2e_run.program["workloads"].workloads())
    mismatches, unverified = checks.placement(capacity_plan, pods, replicasets)
    assert mismatches == [] and unverified == []


def test_a_pinned_pod_on_another_node_is_a_mismatch(e2e_run: mockrun.Result) -> None:
    pods, replicasets = _pods_as_planned(e2e_run, move="pihole/pihole")
    capacity_plan = plan(e2e_run.program["settings"], e2e_run.program["workloads"].workloads())
    mismatches, _ = checks.placement(capacity_plan, pods, replicasets)
    assert mismatches == [
        "Deployment pihole/pihole: runs on pi3-worker-1, the capacity proof put it on pi-k3s"
    ]


def test_an_admission_refusal_is_found_and_a_normal_event_is_not() -> None:
    refused = {
        "reason": "FailedCreate",
        "involvedObject": {"kind": "ReplicaSet", "namespace": "pihole", "name": "pihole-abc"},
        "message": 'Error creating: pods "pihole-abc-x" is forbidden: violates PodSecurity '
        '"restricted:latest"',
    }
    normal = {**refused, "reason": "SuccessfulCreate", "message": "Created pod: pihole-abc-x"}
    assert checks.pods_rejected_by_admission([refused, normal], []) == [
        f"ReplicaSet pihole/pihole-abc: {refused['message']}"
    ]
    assert checks.pods_rejected_by_admission([normal], []) == []


def test_a_local_path_volume_is_made_for_the_program_claim(pi_k3s: mockrun.Result) -> None:
    pvc = pi_k3s.manifest("PersistentVolumeClaim", "pihole-etc", "pihole")
    pvc["metadata"] |= {"uid": "1234", "resourceVersion": "7"}  # what the API server adds
    assert stand_ins.provision_problem(pvc) is None
    pv = stand_ins.local_path_volume(pvc, "pi-k3s")
    assert pv["metadata"]["name"] == "pvc-1234"
    assert pv["spec"]["local"]["path"] == "/var/lib/rancher/k3s/storage/pvc-1234_pihole_pihole-etc"
    terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms == [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["pi-k3s"]}]}
    ]
    assert pv["spec"]["claimRef"]["uid"] == "1234" and pv["spec"]["storageClassName"] == "local-path"
    pvc["spec"]["accessModes"] = ["ReadWriteMany"]
    assert stand_ins.provision_problem(pvc) == (
        "NodePath only supports ReadWriteOnce and ReadWriteOncePod (1.22+) access modes"
    )


def _nginx_service(settings: Any, **spec: Any) -> dict[str, Any]:
    """The controller's Service as the API server returns it, of the type the program's chart
    values give it."""
    kind = stand_ins.NGINX().values(settings)["controller"]["service"]["type"]
    return {
        "metadata": {"namespace": stand_ins.NGINX.namespace, "name": stand_ins.NGINX_SERVICE},
        "spec": {"type": kind, "clusterIP": "10.43.7.7", **spec},
    }


def test_the_ingress_status_stand_in_publishes_the_cluster_ip_of_the_programs_service(settings: Any) -> None:
    service = _nginx_service(settings)
    assert service["spec"]["type"] == "ClusterIP"
    assert stand_ins.service_status_address(service) == [{"ip": "10.43.7.7"}]
    service["spec"]["externalIPs"] = ["192.0.2.9"]  # ignored for a ClusterIP Service
    assert stand_ins.service_status_address(service) == [{"ip": "10.43.7.7"}]


def test_the_ingress_status_stand_in_follows_the_service_type_as_ingress_nginx_does(settings: Any) -> None:
    node_port = _nginx_service(settings, type="NodePort")
    assert stand_ins.service_status_address(node_port) == [{"ip": "10.43.7.7"}]
    node_port["spec"]["externalIPs"] = ["192.0.2.9", "192.0.2.1"]
    assert stand_ins.service_status_address(node_port) == [{"ip": "192.0.2.1"}, {"ip": "192.0.2.9"}]
    name = _nginx_service(settings, type="ExternalName", externalName="lb.example")
    assert stand_ins.service_status_address(name) == [{"hostname": "lb.example"}]
    lb = _nginx_service(settings, type="LoadBalancer", externalIPs=["192.0.2.5", "192.0.2.9"])
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.9"}, {"hostname": "a.example"}]}}
    assert stand_ins.service_status_address(lb) == [
        {"ip": "192.0.2.5"},
        {"ip": "192.0.2.9"},
        {"hostname": "a.example"},
    ]
    with pytest.raises(ValueError, match=r"ingress-nginx/ingress-nginx-controller \(type 'Headless'\)"):
        stand_ins.service_status_address(_nginx_service(settings, type="Headless"))


def _events(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


def test_the_engine_summary_and_policy_events_are_read_as_the_cli_streams_them() -> None:
    up = _events("up-summary-event.jsonl")
    assert engine.change_summary(up) == {"create": 195}
    preview = _events("policy-preview-events.jsonl")
    mandatory = {p.name for p in MANDATORY_POLICIES}
    found = engine.policy_findings(preview, mandatory)
    assert found["resources_analyzed"] == 1 and found["packs"]
    assert found["policies"]["run-as-non-root"] == {"passed": 1, "advisory": 1}
    assert found["mandatory_failures"] == []
    # The same advisory violation, were the policy mandatory, is a failure naming the resource.
    failing = engine.policy_findings(preview, mandatory | {"run-as-non-root"})["mandatory_failures"]
    assert failing and failing[0].startswith("run-as-non-root: dns-pihole-deployment: ")


def test_a_schema_that_refers_to_its_siblings_is_rebased_onto_the_mirror(tmp_path: Path) -> None:
    chart = tmp_path / "common"
    (chart / "schemas").mkdir(parents=True)
    (chart / "schemas" / "pod.json").write_text("{}")
    refs = {
        "$id": "https://example.invalid/values.schema.json",
        "properties": {"p": {"$ref": "schemas/pod.json"}},
    }
    (chart / "values.schema.json").write_text(json.dumps(refs))
    own = tmp_path / "plain"
    own.mkdir()
    (own / "values.schema.json").write_text(
        json.dumps({"$id": "https://example.invalid/x", "$defs": {"a": {}}})
    )
    assert mirror._schemas_to_rebase(chart) == [(chart / "values.schema.json", refs["$id"])]
    assert mirror._schemas_to_rebase(own) == []
