"""Every pod template meets the Pod Security level of its namespace (PSS baseline/restricted)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components import k8s as kb
from config.types import Resources
from policy import pss
from tools import mockrun

RES = Resources(cpu_request="10m", memory_request="32Mi", memory_limit="64Mi")


def builder_spec(**pod: Any) -> dict[str, Any]:
    spec = kb.pod_spec([kb.container("app", "ghcr.io/x/app:1.0", RES)], kb.PodOptions(**pod))
    return spec


def test_builder_defaults_meet_restricted() -> None:
    assert pss.violations(builder_spec(), "restricted") == []
    assert (
        pss.violations(
            builder_spec(volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "d"}}]), "restricted"
        )
        == []
    )


def _mutated(path: str, value: Any, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    out = copy.deepcopy(spec or builder_spec())
    target: Any = out
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target.setdefault(part, {})
    target[parts[-1]] = value
    return out


BASELINE_BREAKS = [
    ("hostNetwork", True),
    ("hostPID", True),
    ("hostIPC", True),
    ("containers.0.securityContext.privileged", True),
    ("containers.0.securityContext.capabilities.add", ["SYS_ADMIN"]),
    ("volumes", [{"name": "h", "hostPath": {"path": "/etc"}}]),
    ("containers.0.ports", [{"containerPort": 80, "hostPort": 80}]),
    ("containers.0.securityContext.seccompProfile", {"type": "Unconfined"}),
    ("securityContext.sysctls", [{"name": "kernel.msgmax", "value": "1"}]),
    ("containers.0.securityContext.procMount", "Unmasked"),
    ("containers.0.securityContext.seLinuxOptions", {"type": "spc_t"}),
    ("containers.0.securityContext.appArmorProfile", {"type": "Unconfined"}),
]
RESTRICTED_BREAKS = [
    ("containers.0.securityContext.allowPrivilegeEscalation", True),
    ("containers.0.securityContext.runAsNonRoot", False),
    ("containers.0.securityContext.runAsUser", 0),
    ("containers.0.securityContext.capabilities", {"drop": ["NET_RAW"]}),
    ("containers.0.securityContext.capabilities.add", ["CHOWN"]),
    ("volumes", [{"name": "n", "nfs": {"server": "192.168.1.60", "path": "/media"}}]),
]


@pytest.mark.parametrize(("path", "value"), BASELINE_BREAKS, ids=[b[0] for b in BASELINE_BREAKS])
def test_each_baseline_rule_fails_baseline_and_restricted(path: str, value: Any) -> None:
    spec = _mutated(path, value)
    assert pss.violations(spec, "baseline")
    assert pss.violations(spec, "restricted")
    assert pss.violations(spec, "privileged") == []


@pytest.mark.parametrize(("path", "value"), RESTRICTED_BREAKS, ids=[b[0] for b in RESTRICTED_BREAKS])
def test_each_restricted_rule_fails_only_restricted(path: str, value: Any) -> None:
    spec = _mutated(path, value)
    assert pss.violations(spec, "restricted")
    assert pss.violations(spec, "baseline") == []


def test_seccomp_may_come_from_the_pod_only() -> None:
    spec = builder_spec()
    del spec["containers"][0]["securityContext"]["seccompProfile"]
    assert pss.violations(spec, "restricted") == []
    del spec["securityContext"]["seccompProfile"]
    assert pss.violations(spec, "restricted")


def test_builder_exceptions_fall_to_baseline() -> None:
    root = kb.container(
        "c", "x/y:1", RES, exceptions=kb.Exceptions(reason="image needs root", run_as_root=True)
    )
    spec = kb.pod_spec([root])
    assert pss.violations(spec, "restricted")
    assert pss.violations(spec, "baseline") == []
    host = builder_spec(host_network=True, host_network_reason="DNS on :53 of the node")
    assert pss.violations(host, "baseline") == ["hostNetwork=true"]


def test_unknown_level_is_an_error() -> None:
    with pytest.raises(ValueError):
        pss.violations(builder_spec(), "strict")


def namespace_levels(result: mockrun.Result) -> dict[str, str]:
    return {
        ns["metadata"]["name"]: ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        for ns in result.manifests("Namespace")
    }


def workload_violations(result: mockrun.Result) -> tuple[int, list[str]]:
    levels = namespace_levels(result)
    problems: list[str] = []
    checked = 0
    for obj in result.manifests():
        template = pss.pod_template(obj)
        if template is None:
            continue
        checked += 1
        meta = obj["metadata"]
        level = levels.get(meta.get("namespace", ""), "")
        if not level:
            problems.append(
                f"{obj['kind']} {meta.get('namespace')}/{meta['name']}: namespace has no Pod Security level"
            )
            continue
        for v in pss.violations(template[0], level, template[1]):
            problems.append(f"{obj['kind']} {meta.get('namespace')}/{meta['name']} ({level}): {v}")
    return checked, problems


def test_every_namespace_enforces_a_level(pi_k3s: mockrun.Result) -> None:
    levels = namespace_levels(pi_k3s)
    assert levels and set(levels.values()) <= set(pss.LEVELS)
    for ns in pi_k3s.manifests("Namespace"):
        labels = ns["metadata"]["labels"]
        level = labels["pod-security.kubernetes.io/enforce"]
        if level != "restricted":
            assert ns["metadata"]["annotations"]["pi-cluster/pod-security-reason"].strip()


def test_every_workload_meets_its_namespace_level(pi_k3s: mockrun.Result) -> None:
    _, problems = workload_violations(pi_k3s)
    assert problems == []


def test_the_stack_check_catches_a_workload_below_its_level(pi_k3s: mockrun.Result) -> None:
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bad", "namespace": "external-secrets"},
        "spec": {"template": {"spec": _mutated("hostNetwork", True)}},
    }
    fake = mockrun.Result(pi_k3s.stack, list(pi_k3s.registrations), {}, set())
    original = fake.manifests
    fake.manifests = lambda kind=None: [*original(kind), *([bad] if kind in (None, "Deployment") else [])]  # type: ignore[method-assign]
    checked, problems = workload_violations(fake)
    assert checked >= 1
    assert problems == ["Deployment external-secrets/bad (restricted): hostNetwork=true"]
