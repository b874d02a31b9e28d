"""Shared builders for Kubernetes objects, so every component gets the same safe defaults.

Manifests are plain dicts with the API's camelCase keys throughout the project. A container built
here runs as non-root with the RuntimeDefault seccomp profile, drops every capability, cannot
escalate privileges, has a read-only root filesystem and has requests and limits. Any exception
is an explicit argument with a reason, so reviewers see why a workload needs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from config.types import Resources

PodSecurityLevel = Literal["restricted", "baseline", "privileged"]

MANAGED_BY = {"app.kubernetes.io/managed-by": "pulumi", "app.kubernetes.io/part-of": "pi-cluster"}


@dataclass(frozen=True)
class Exceptions:
    """Departures from the secure container defaults, each with its reason.

    ``reason`` is mandatory when anything is relaxed; it is kept in the pod annotation
    ``pi-cluster/security-exceptions`` so it shows up in rendered manifests and reviews.
    """

    reason: str = ""
    run_as_root: bool = False
    writable_root_fs: bool = False
    add_capabilities: tuple[str, ...] = ()
    # Needed when a non-root process must gain file capabilities on exec (no_new_privs blocks it).
    allow_privilege_escalation: bool = False

    def __post_init__(self) -> None:
        relaxed = any(
            (self.run_as_root, self.writable_root_fs, self.add_capabilities, self.allow_privilege_escalation)
        )
        if relaxed and not self.reason.strip():
            raise ValueError("a security exception needs a reason")


def labels(app: str, component: str | None = None) -> dict[str, str]:
    out = {"app.kubernetes.io/name": app, **MANAGED_BY}
    if component:
        out["app.kubernetes.io/component"] = component
    return out


def selector(app: str, component: str | None = None) -> dict[str, str]:
    out = {"app.kubernetes.io/name": app}
    if component:
        out["app.kubernetes.io/component"] = component
    return out


def metadata(
    name: str,
    namespace: str | None = None,
    app: str | None = None,
    extra_labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {**labels(app or name), **(extra_labels or {})}}
    if namespace:
        meta["namespace"] = namespace
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def container(
    name: str,
    image: str,
    resources: Resources,
    *,
    command: Sequence[str] | None = None,
    args: Sequence[Any] | None = None,
    env: Mapping[str, Any] | None = None,
    env_from_secrets: Mapping[str, tuple[str, str]] | None = None,
    ports: Sequence[Mapping[str, Any]] = (),
    volume_mounts: Sequence[Mapping[str, Any]] = (),
    readiness: Mapping[str, Any] | None = None,
    liveness: Mapping[str, Any] | None = None,
    startup: Mapping[str, Any] | None = None,
    exceptions: Exceptions = Exceptions(),
    run_as_user: int | None = None,
) -> dict[str, Any]:
    """A container with the secure defaults and requests/limits.

    ``env`` values may be strings or Outputs; ``env_from_secrets`` maps a variable to
    ``(secret name, key)`` so secret values never pass through the program.
    """
    caps: dict[str, Any] = {"drop": ["ALL"]}
    if exceptions.add_capabilities:
        caps["add"] = list(exceptions.add_capabilities)
    security: dict[str, Any] = {
        "allowPrivilegeEscalation": exceptions.allow_privilege_escalation,
        "readOnlyRootFilesystem": not exceptions.writable_root_fs,
        "capabilities": caps,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if exceptions.run_as_root:
        security["runAsNonRoot"] = False
    else:
        security["runAsNonRoot"] = True
        if run_as_user is not None:
            security["runAsUser"] = run_as_user
    spec: dict[str, Any] = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "resources": resources.spec(),
        "securityContext": security,
    }
    if command:
        spec["command"] = list(command)
    if args:
        spec["args"] = list(args)
    env_list: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in (env or {}).items()]
    for var, (secret, key) in (env_from_secrets or {}).items():
        env_list.append({"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
    if env_list:
        spec["env"] = env_list
    if ports:
        spec["ports"] = [dict(p) for p in ports]
    if volume_mounts:
        spec["volumeMounts"] = [dict(m) for m in volume_mounts]
    for key, probe in (("readinessProbe", readiness), ("livenessProbe", liveness), ("startupProbe", startup)):
        if probe:
            spec[key] = dict(probe)
    return spec


def exec_probe(
    command: Sequence[str], period: int = 10, timeout: int = 5, failures: int = 3
) -> dict[str, Any]:
    return {
        "exec": {"command": list(command)},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def http_probe(
    path: str, port: int | str, period: int = 10, timeout: int = 5, failures: int = 3
) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


@dataclass
class PodOptions:
    """Pod-level settings beyond the containers."""

    node_name: str | None = None  # pin to a node via kubernetes.io/hostname
    node_selector: Mapping[str, str] = field(default_factory=dict)
    host_network: bool = False
    host_network_reason: str = ""
    service_account: str | None = None
    automount_token: bool = False
    volumes: Sequence[Mapping[str, Any]] = ()
    init_containers: Sequence[Mapping[str, Any]] = ()
    fs_group: int | None = None
    run_as_user: int | None = None
    restart_policy: str | None = None
    affinity: Mapping[str, Any] | None = None
    tolerations: Sequence[Mapping[str, Any]] = ()
    dns_policy: str | None = None

    def __post_init__(self) -> None:
        if self.host_network and not self.host_network_reason.strip():
            raise ValueError("hostNetwork needs a reason")


def pod_spec(containers: Sequence[Mapping[str, Any]], options: PodOptions | None = None) -> dict[str, Any]:
    """A pod spec with the pod-level secure defaults."""
    o = options or PodOptions()
    security: dict[str, Any] = {"seccompProfile": {"type": "RuntimeDefault"}}
    if o.fs_group is not None:
        security["fsGroup"] = o.fs_group
    if o.run_as_user is not None:
        security["runAsUser"] = o.run_as_user
        security["runAsGroup"] = o.run_as_user
    spec: dict[str, Any] = {
        "containers": [dict(c) for c in containers],
        "automountServiceAccountToken": o.automount_token,
        "securityContext": security,
    }
    selector_map = dict(o.node_selector)
    if o.node_name:
        selector_map["kubernetes.io/hostname"] = o.node_name
    if selector_map:
        spec["nodeSelector"] = selector_map
    if o.host_network:
        spec["hostNetwork"] = True
        spec["dnsPolicy"] = o.dns_policy or "ClusterFirstWithHostNet"
    elif o.dns_policy:
        spec["dnsPolicy"] = o.dns_policy
    if o.service_account:
        spec["serviceAccountName"] = o.service_account
    if o.volumes:
        spec["volumes"] = [dict(v) for v in o.volumes]
    if o.init_containers:
        spec["initContainers"] = [dict(c) for c in o.init_containers]
    if o.restart_policy:
        spec["restartPolicy"] = o.restart_policy
    if o.affinity:
        spec["affinity"] = dict(o.affinity)
    if o.tolerations:
        spec["tolerations"] = [dict(t) for t in o.tolerations]
    return spec


def _reasons(containers: Sequence[Mapping[str, Any]], options: PodOptions | None) -> dict[str, str]:
    notes = {}
    if options and options.host_network:
        notes["pi-cluster/host-network"] = options.host_network_reason
    return notes


def deployment(
    name: str,
    namespace: str,
    containers: Sequence[Mapping[str, Any]],
    *,
    opts: pulumi.ResourceOptions,
    resource_name: str,
    app: str | None = None,
    component: str | None = None,
    replicas: int = 1,
    recreate: bool = False,
    pod: PodOptions | None = None,
    pod_annotations: Mapping[str, Any] | None = None,
    exception_reasons: Mapping[str, str] | None = None,
) -> k8s.apps.v1.Deployment:
    """A Deployment with stable names and selectors; ``recreate`` for ReadWriteOnce volumes."""
    app = app or name
    annotations = {**_reasons(containers, pod), **(exception_reasons or {}), **(pod_annotations or {})}
    template_meta: dict[str, Any] = {"labels": labels(app, component)}
    if annotations:
        template_meta["annotations"] = annotations
    spec: dict[str, Any] = {
        "replicas": replicas,
        "revisionHistoryLimit": 3,
        "selector": {"matchLabels": selector(app, component)},
        "template": {"metadata": template_meta, "spec": pod_spec(containers, pod)},
    }
    if recreate:
        spec["strategy"] = {"type": "Recreate"}
    return k8s.apps.v1.Deployment(
        resource_name,
        metadata=metadata(name, namespace, app, extra_labels=labels(app, component)),
        spec=spec,
        opts=opts,
    )


def service(
    name: str,
    namespace: str,
    ports: Sequence[Mapping[str, Any]],
    *,
    opts: pulumi.ResourceOptions,
    resource_name: str,
    app: str | None = None,
    component: str | None = None,
    select: bool = True,
) -> k8s.core.v1.Service:
    """A ClusterIP Service; ``select=False`` for a selector-less Service (LAN devices)."""
    app = app or name
    spec: dict[str, Any] = {"type": "ClusterIP", "ports": [dict(p) for p in ports]}
    if select:
        spec["selector"] = selector(app, component)
    return k8s.core.v1.Service(
        resource_name,
        metadata=metadata(name, namespace, app),
        spec=spec,
        opts=opts,
    )


def namespace(
    name: str,
    *,
    opts: pulumi.ResourceOptions,
    resource_name: str,
    pod_security: PodSecurityLevel = "restricted",
    reason: str = "",
) -> k8s.core.v1.Namespace:
    """A namespace labelled with the Pod Security Standard it enforces.

    Anything weaker than ``restricted`` needs a reason, recorded as an annotation.
    """
    if pod_security != "restricted" and not reason.strip():
        raise ValueError(f"namespace {name}: Pod Security level {pod_security!r} needs a reason")
    extra = {
        "pod-security.kubernetes.io/enforce": pod_security,
        "pod-security.kubernetes.io/warn": pod_security,
        "pod-security.kubernetes.io/audit": pod_security,
    }
    annotations = {"pi-cluster/pod-security-reason": reason} if reason else None
    return k8s.core.v1.Namespace(
        resource_name,
        metadata=metadata(name, None, name, extra_labels=extra, annotations=annotations),
        opts=opts,
    )


def pvc(
    name: str,
    namespace: str,
    size: str,
    *,
    opts: pulumi.ResourceOptions,
    resource_name: str,
    app: str | None = None,
    storage_class: str | None = "local-path",
    access_mode: str = "ReadWriteOnce",
    volume_name: str | None = None,
) -> k8s.core.v1.PersistentVolumeClaim:
    spec: dict[str, Any] = {
        "accessModes": [access_mode],
        "resources": {"requests": {"storage": size}},
    }
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    if volume_name:
        spec["volumeName"] = volume_name
    return k8s.core.v1.PersistentVolumeClaim(
        resource_name,
        metadata=metadata(name, namespace, app or name),
        spec=spec,
        opts=opts,
    )
