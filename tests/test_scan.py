"""checkov waivers set by the shared builders, and checkov itself on builder-made workloads."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import k8s as kb
from config.types import Resources
from tests.conftest import ROOT
from tools import capacity as capacity_tool

CHECKOV = ROOT / ".scan-venv" / "bin" / "checkov"
RES = Resources(cpu_request="10m", memory_request="32Mi", memory_limit="64Mi")


def checkov() -> Path:
    if CHECKOV.exists():
        return CHECKOV
    if os.environ.get("REQUIRE_TOOLS") == "1":
        pytest.fail(f"checkov missing at {CHECKOV} (run `make scan` first; REQUIRE_TOOLS=1)")
    pytest.skip("checkov is not installed (make scan installs it)")


def spec(**pod: Any) -> dict[str, Any]:
    c = kb.container(
        "app",
        "ghcr.io/x/app:1.2.3",
        RES,
        readiness=kb.http_probe("/", 8080),
        liveness=kb.http_probe("/", 8080),
    )
    return kb.pod_spec([c], kb.PodOptions(**pod))


def test_waivers_follow_the_pod_spec() -> None:
    plain = kb.checkov_waivers(spec())
    assert sorted(v.split("=")[0] for v in plain.values()) == [
        "CKV_K8S_11",
        "CKV_K8S_15",
        "CKV_K8S_40",
        "CKV_K8S_43",
    ]
    assert list(plain) == [f"checkov.io/skip{i}" for i in range(1, 5)]
    high_uid = kb.checkov_waivers(spec(run_as_user=10001))
    assert "CKV_K8S_40" not in " ".join(high_uid.values())
    host = kb.checkov_waivers(spec(host_network=True, host_network_reason="DNS on :53"))
    assert any(v.startswith("CKV_K8S_19=") for v in host.values())
    extra = kb.checkov_waivers(spec(), {"CKV_K8S_35": "the app reads its key from env only"})
    assert any(v.startswith("CKV_K8S_35=the app reads") for v in extra.values())


def test_a_waiver_needs_a_reason_without_equals() -> None:
    with pytest.raises(ValueError, match="CKV_K8S_35"):
        kb.checkov_waivers(spec(), {"CKV_K8S_35": "a=b"})
    with pytest.raises(ValueError, match="CKV_K8S_35"):
        kb.checkov_waivers(spec(), {"CKV_K8S_35": " "})


def _workload(kind: str, name: str, pod: dict[str, Any], waivers: bool = True) -> dict[str, Any]:
    template = {"metadata": {"labels": kb.labels(name)}, "spec": pod}
    body: dict[str, Any] = {"selector": {"matchLabels": kb.selector(name)}, "template": template}
    if kind == "CronJob":
        template["spec"] = {**pod, "restartPolicy": "OnFailure"}
        body = {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template}}}
    return {
        "apiVersion": "batch/v1" if kind == "CronJob" else "apps/v1",
        "kind": kind,
        "metadata": kb.metadata(name, "apps", annotations=kb.checkov_waivers(pod) if waivers else None),
        "spec": body,
    }


def _scan(tmp: Path, objs: list[dict[str, Any]]) -> dict[str, Any]:
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny-ingress", "namespace": "apps"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }
    for i, obj in enumerate([*objs, policy]):
        (tmp / f"{i}.yaml").write_text(yaml.safe_dump(obj))
    proc = subprocess.run(
        [
            str(checkov()),
            "-d",
            str(tmp),
            "--skip-download",
            "--framework",
            "kubernetes",
            "-o",
            "json",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    report = json.loads(proc.stdout)
    return report[0] if isinstance(report, list) else report


def test_builder_workloads_pass_checkov_with_their_waivers(tmp_path: Path) -> None:
    pods = [
        _workload("Deployment", "web", spec()),
        _workload("DaemonSet", "agent", spec()),
        _workload("CronJob", "job", spec()),
    ]
    report = _scan(tmp_path, pods)
    summary = report["summary"]
    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]]
    assert failed == []
    assert summary["skipped"] >= 12  # 4 waivers x 3 workloads


def test_without_waivers_checkov_fails(tmp_path: Path) -> None:
    report = _scan(tmp_path, [_workload("Deployment", "web", spec(), waivers=False)])
    failed = {c["check_id"] for c in report["results"]["failed_checks"]}
    assert failed == {"CKV_K8S_11", "CKV_K8S_15", "CKV_K8S_40", "CKV_K8S_43"}


def test_capacity_table_prints_every_node() -> None:
    row = {
        "requested": {"cpu": "30m", "memory": "96Mi"},
        "limit": {"cpu": "unbounded", "memory": "384Mi"},
        "allocatable": {"cpu": "3500m", "memory": "7168Mi"},
        "headroomPercent": 98.7,
        "pods": ["a/b"],
    }
    text = capacity_tool.table({"pi-k3s": row, "pi3-worker-1": {**row, "pods": []}})
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["node", "cpu"]
    assert lines[1].split() == [
        "pi-k3s",
        "30m",
        "unbounded",
        "3500m",
        "96Mi",
        "384Mi",
        "7168Mi",
        "98.7%",
        "1",
    ]
    assert "(no pods)" in text


def test_waivers_derived_from_exceptions_secret_env_and_api_token() -> None:
    relaxed = kb.container(
        "app",
        "ghcr.io/x/app:1.2.3",
        RES,
        env_from_secrets={"TOKEN": ("app-secret", "token")},
        exceptions=kb.Exceptions(
            reason="the image's entrypoint needs root", run_as_root=True, add_capabilities=("CHOWN",)
        ),
    )
    pod = kb.pod_spec([relaxed], kb.PodOptions(automount_token=True))
    with pytest.raises(ValueError, match="CKV_K8S_23 but the pod states no exception reason"):
        kb.checkov_waivers(pod)
    waivers = dict(v.split("=", 1) for v in kb.checkov_waivers(pod, exception_reason="needs root").values())
    assert waivers["CKV_K8S_23"] == waivers["CKV_K8S_25"] == "security exception: needs root"
    assert "CKV_K8S_20" not in waivers and "CKV_K8S_22" not in waivers  # not relaxed
    assert waivers["CKV_K8S_35"].startswith("the image reads this credential only")
    assert waivers["CKV_K8S_38"].startswith("the pod calls the Kubernetes API")
    plain = " ".join(kb.checkov_waivers(spec()).values())
    assert "CKV_K8S_35" not in plain and "CKV_K8S_38" not in plain and "CKV_K8S_23" not in plain


def test_derived_waivers_satisfy_checkov(tmp_path: Path) -> None:
    relaxed = kb.container(
        "app",
        "ghcr.io/x/app:1.2.3",
        RES,
        env_from_secrets={"TOKEN": ("app-secret", "token")},
        readiness=kb.http_probe("/", 8080),
        liveness=kb.http_probe("/", 8080),
        exceptions=kb.Exceptions(
            reason="needs root", run_as_root=True, writable_root_fs=True, add_capabilities=("CHOWN",)
        ),
    )
    pod = kb.pod_spec([relaxed], kb.PodOptions(automount_token=True))
    obj = _workload("Deployment", "web", pod, waivers=False)
    obj["metadata"]["annotations"] = kb.checkov_waivers(pod, exception_reason="needs root")
    report = _scan(tmp_path, [obj])
    assert [c["check_id"] for c in report["results"]["failed_checks"]] == []
    bare = _scan(tmp_path, [_workload("Deployment", "web", pod, waivers=False)])
    failed = {c["check_id"] for c in bare["results"]["failed_checks"]}
    assert {"CKV_K8S_22", "CKV_K8S_23", "CKV_K8S_25", "CKV_K8S_35", "CKV_K8S_38"} <= failed
