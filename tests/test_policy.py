"""The CrossGuard policies: a compliant and a violating case each, and the whole stack passes.

Policies are called through ``validate`` with ResourceValidationArgs built as the engine would
(never through PolicyPack, which starts a server and blocks).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResourceOptions,
    ResourceValidationArgs,
)

from components import k8s as kb
from config.types import Resources
from policy import policies
from tools import mockrun

BY_NAME = {p.name: p for p in policies.POLICIES}


def make_args(
    type_: str, props: dict[str, Any], *, name: str = "x", protect: bool = False, parent: str | None = None
) -> ResourceValidationArgs:
    opts = PolicyResourceOptions(
        protect=protect,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
        parent=parent,
    )
    return ResourceValidationArgs(type_, props, f"urn:pulumi:s::p::{type_}::{name}", name, opts, None)


def run(policy: str, args: ResourceValidationArgs) -> list[str]:
    found: list[str] = []
    BY_NAME[policy].validate(args, lambda msg, urn=None: found.append(msg))
    return found


RES = Resources(cpu_request="10m", memory_request="32Mi", memory_limit="64Mi")


def deployment(
    name: str = "app",
    namespace: str = "apps",
    container: dict[str, Any] | None = None,
    **pod: Any,
) -> ResourceValidationArgs:
    c = container or kb.container(
        "app",
        "ghcr.io/example/app:1.2.3",
        RES,
        readiness=kb.http_probe("/", 8080),
        liveness=kb.http_probe("/", 8080),
    )
    spec = kb.pod_spec([c])
    spec.update(pod)
    props = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {}, "template": {"metadata": {}, "spec": spec}},
    }
    return make_args("kubernetes:apps/v1:Deployment", props, name=name)


def with_container(**changes: Any) -> ResourceValidationArgs:
    c = kb.container(
        "app",
        "ghcr.io/example/app:1.2.3",
        RES,
        readiness=kb.http_probe("/", 1),
        liveness=kb.http_probe("/", 1),
    )
    for key, value in changes.items():
        if value is None:
            c.pop(key, None)
        else:
            c[key] = value
    return deployment(container=c)


def test_policy_levels_and_names() -> None:
    assert {p.enforcement_level for p in policies.MANDATORY_POLICIES} == {EnforcementLevel.MANDATORY}
    assert {p.enforcement_level for p in policies.ADVISORY_POLICIES} == {EnforcementLevel.ADVISORY}
    assert len(BY_NAME) == len(policies.POLICIES) == 10


# ---- compliant and violating cases, one pair (or more) per policy


def test_builder_workload_is_compliant_with_every_policy() -> None:
    args = deployment()
    assert {name: run(name, args) for name in BY_NAME} == {name: [] for name in BY_NAME}


@pytest.mark.parametrize("image", ["nginx", "nginx:latest", "ghcr.io/x/y:stable", "registry:5000/app"])
def test_floating_or_untagged_image_is_refused(image: str) -> None:
    assert run("no-floating-image", with_container(image=image))


def test_digest_pinned_image_passes() -> None:
    assert run("no-floating-image", with_container(image="nginx@sha256:" + "a" * 64)) == []


def test_missing_requests_or_memory_limit_is_refused() -> None:
    assert run("container-resources", with_container(resources={"requests": {"cpu": "10m"}})) == [
        "Deployment apps/app: container 'app' lacks requests.memory, limits.memory"
    ]
    assert run("container-resources", with_container(resources=None))


def test_privileged_container_is_refused() -> None:
    sc = {"privileged": True}
    assert run("no-privileged", with_container(securityContext=sc)) == [
        "Deployment apps/app: container 'app' is privileged"
    ]


def test_host_network_only_on_the_allowlist() -> None:
    assert run("host-access-allowlist", deployment(hostNetwork=True))
    assert run("host-access-allowlist", deployment("pihole", "pihole", hostNetwork=True)) == []
    assert run("host-access-allowlist", deployment("pihole-2", "pihole", hostNetwork=True)) == []
    assert run("host-access-allowlist", deployment("pihole-exporter", "pihole", hostNetwork=True))
    assert run("host-access-allowlist", deployment(hostPID=True))


def test_host_port_only_on_the_allowlist() -> None:
    ports = [{"containerPort": 443, "hostPort": 443}]
    args = with_container(ports=ports)
    assert run("host-access-allowlist", args)
    c = kb.container("c", "ghcr.io/x/y:1.0", RES)
    c["ports"] = ports
    assert (
        run("host-access-allowlist", deployment("ingress-nginx-controller", "ingress-nginx", container=c))
        == []
    )
    c["ports"] = [{"containerPort": 80, "hostPort": 80}]
    assert run("host-access-allowlist", deployment("ingress-nginx-controller", "ingress-nginx", container=c))


def test_host_path_only_on_the_allowlist() -> None:
    vols = [{"name": "data", "hostPath": {"path": "/var/lib/rancher/k3s/storage"}}]
    assert run("host-access-allowlist", deployment(volumes=vols))
    assert run("host-access-allowlist", deployment("pvc-backup-pi-k3s", "backups", volumes=vols)) == []
    etc = [{"name": "etc", "hostPath": {"path": "/etc"}}]
    assert run("host-access-allowlist", deployment("pvc-backup-pi-k3s", "backups", volumes=etc))


def test_allowlist_entries_all_have_reasons() -> None:
    from policy.allowlist import HOST_ACCESS

    assert len(HOST_ACCESS) == 4
    assert all(len(a.reason) > 20 for a in HOST_ACCESS)


def configmap(data: dict[str, str]) -> ResourceValidationArgs:
    props = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "apps"},
        "data": data,
    }
    return make_args("kubernetes:core/v1:ConfigMap", props)


@pytest.mark.parametrize(
    "data",
    [
        {"API_TOKEN": "c2VjcmV0LXZhbHVlLTEyMzQ1"},
        {"settings.yaml": "server:\n  password: hunter2hunter2\n"},
        {"key.pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n"},
        {"db": "postgres://immich:s3cretpw@postgres:5432/immich"},
    ],
)
def test_secret_literal_in_configmap_is_refused(data: dict[str, str]) -> None:
    assert run("no-secret-literals", configmap(data))


def test_configmap_without_secrets_passes() -> None:
    data = {
        "services.yaml": "- Pi-hole:\n    widget:\n      key: '{{HOMEPAGE_VAR_PIHOLE_KEY}}'\n",
        "TOKEN_FILE": "/run/secrets/token",
        "unbound.conf": "server:\n  port: 5335\n  do-ip6: no\n",
        "PASSWORD_MIN_LENGTH": "12",
    }
    assert run("no-secret-literals", configmap(data)) == []


def test_secret_literal_in_env_is_refused_and_secret_refs_pass() -> None:
    bad = with_container(env=[{"name": "ADMIN_PASSWORD", "value": "correcthorsebattery"}])
    assert run("no-secret-literals", bad)
    good = with_container(
        env=[
            {"name": "ADMIN_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "TZ", "value": "America/New_York"},
        ]
    )
    assert run("no-secret-literals", good) == []


def ingress(tls: list[dict[str, Any]] | None, host: str = "app.lab.mtgibbs.dev") -> ResourceValidationArgs:
    spec: dict[str, Any] = {"rules": [{"host": host, "http": {"paths": []}}]}
    if tls is not None:
        spec["tls"] = tls
    props = {"kind": "Ingress", "metadata": {"name": "app", "namespace": "apps"}, "spec": spec}
    return make_args("kubernetes:networking.k8s.io/v1:Ingress", props)


def test_ingress_needs_tls_for_every_host() -> None:
    assert run("ingress-tls", ingress(None)) == ["Ingress apps/app: no TLS"]
    assert run("ingress-tls", ingress([{"hosts": ["other.lab.mtgibbs.dev"], "secretName": "t"}]))
    assert run("ingress-tls", ingress([{"hosts": ["app.lab.mtgibbs.dev"], "secretName": "t"}])) == []


def pvc(protect: bool, annotations: dict[str, str] | None = None) -> ResourceValidationArgs:
    meta: dict[str, Any] = {"name": "data", "namespace": "apps"}
    if annotations:
        meta["annotations"] = annotations
    props = {"kind": "PersistentVolumeClaim", "metadata": meta, "spec": {}}
    return make_args("kubernetes:core/v1:PersistentVolumeClaim", props, protect=protect)


def test_stateful_pvc_must_be_protected() -> None:
    assert run("stateful-pvc-protected", pvc(False))
    assert run("stateful-pvc-protected", pvc(True)) == []
    assert run("stateful-pvc-protected", pvc(False, {"pi-cluster/ephemeral": "transcode scratch"})) == []
    assert run("stateful-pvc-protected", pvc(False, {"pi-cluster/ephemeral": " "}))


def test_advisory_probes() -> None:
    assert run("probes", with_container(readinessProbe=None))
    assert run("probes", deployment()) == []


def test_advisory_run_as_non_root() -> None:
    c = kb.container(
        "c", "ghcr.io/x/y:1.0", RES, exceptions=kb.Exceptions(reason="image needs root", run_as_root=True)
    )
    assert run("run-as-non-root", deployment(container=c))
    assert run("run-as-non-root", deployment()) == []


def test_advisory_read_only_root_filesystem() -> None:
    c = kb.container(
        "c", "ghcr.io/x/y:1.0", RES, exceptions=kb.Exceptions(reason="writes /tmp", writable_root_fs=True)
    )
    assert run("read-only-root-filesystem", deployment(container=c))
    assert run("read-only-root-filesystem", deployment()) == []


def test_cronjob_pods_are_checked() -> None:
    c = kb.container("c", "busybox:latest", RES)
    props = {
        "kind": "CronJob",
        "metadata": {"name": "job", "namespace": "apps"},
        "spec": {"jobTemplate": {"spec": {"template": {"spec": kb.pod_spec([c])}}}},
    }
    assert run("no-floating-image", make_args("kubernetes:batch/v1:CronJob", props))


# ---- the whole rendered stack


def stack_args(result: mockrun.Result) -> list[ResourceValidationArgs]:
    out = []
    for r in result.registrations:
        if not r.custom:
            continue
        out.append(
            make_args(r.type, copy.deepcopy(r.plain_inputs), name=r.name, protect=r.protect, parent=r.parent)
        )
    return out


def test_the_rendered_stack_passes_every_mandatory_policy(pi_k3s: mockrun.Result) -> None:
    violations = []
    checked = 0
    for args in stack_args(pi_k3s):
        for policy in policies.MANDATORY_POLICIES:
            policy.validate(args, lambda msg, urn=None, p=policy.name: violations.append(f"{p}: {msg}"))
            checked += 1
    assert checked > 0
    assert violations == []


def test_the_stack_check_sees_a_violation_when_one_is_injected(pi_k3s: mockrun.Result) -> None:
    args = stack_args(pi_k3s)
    cm = configmap({"TOKEN": "stand-in-but-long-enough"})
    found: list[str] = []
    for a in [*args, cm]:
        for policy in policies.MANDATORY_POLICIES:
            policy.validate(a, lambda msg, urn=None: found.append(msg))
    assert found == ["ConfigMap apps/cm: key 'TOKEN' holds a secret-looking literal (TOKEN)"]
