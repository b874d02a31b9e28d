"""The shared workload builders record what they create for the capacity proof and policies."""

from __future__ import annotations

import pulumi
from pulumi.runtime import settings as psettings

from components import k8s as kb
from components.capacity import WorkloadRegistry
from config.types import Resources
from tools import mockrun

RES = Resources(cpu_request="20m", memory_request="48Mi", memory_limit="96Mi")


def test_builders_record_workloads_and_services() -> None:
    psettings.reset_options(project="pi-cluster", stack="unit")
    pulumi.runtime.set_mocks(mockrun.StandInMocks(), project="pi-cluster", stack="unit", preview=False)
    opts = pulumi.ResourceOptions()
    reg = WorkloadRegistry()
    c = kb.container("app", "ghcr.io/x/app:1.0", RES)
    kb.deployment(
        "web",
        "apps",
        [c],
        replicas=2,
        workloads=reg,
        opts=opts,
        resource_name="web",
        pod=kb.PodOptions(node_name="pi-k3s"),
    )
    kb.daemonset("agent", "apps", [c], workloads=reg, opts=opts, resource_name="agent")
    kb.cronjob("job", "apps", "0 3 * * *", [c], workloads=reg, opts=opts, resource_name="job")
    kb.job(
        "once", "apps", [c], workloads=reg, opts=opts, resource_name="once", annotations={"pi-cluster/x": "1"}
    )
    kb.service(
        "web",
        "apps",
        [{"name": "http", "port": 80, "targetPort": 8080}],
        workloads=reg,
        opts=opts,
        resource_name="web-svc",
    )
    kb.service("lan", "apps", [{"port": 5000}], select=False, workloads=reg, opts=opts, resource_name="lan")
    kb.deployment("untracked", "apps", [c], opts=opts, resource_name="untracked")
    by = {w.name: w for w in reg.workloads()}
    assert set(by) == {"web", "agent", "job", "once"}
    assert by["once"].kind == "Job"
    assert by["web"].replicas == 2 and by["web"].node == "pi-k3s" and by["web"].kind == "Deployment"
    assert by["web"].pod.memory_request == 48 * 2**20 and by["web"].pod.memory_limit == 96 * 2**20
    assert by["agent"].daemonset and by["job"].kind == "CronJob"
    svc, lan = reg.services()
    assert lan.selector == {} and lan.ports == {5000: 5000}  # recorded: no pod behind it
    assert svc.selector == kb.selector("web") and svc.ports == {80: 8080} and svc.port_names == {"http": 80}
