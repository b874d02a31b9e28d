"""Shared builders for Kubernetes objects, so every component gets the same safe defaults.

Manifests are plain dicts with the API's camelCase keys throughout the project. A container built
here runs as non-root with the RuntimeDefault seccomp profile, drops every capability, cannot
escalate privileges, has a read-only root filesystem and has requests and limits. Any exception
is an explicit argument with a reason, so reviewers see why a workload needs it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from components.capacity import ServiceInfo, WorkloadRegistry, from_pod_spec
from config.settings import ChartSource
from config.types import Resources

PodSecurityLevel = Literal["restricted", "baseline", "privileged"]

EPHEMERAL_ANNOTATION = "pi-cluster/ephemeral"

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


# checkov checks our conventions do not meet on purpose; the builders waive them on every
# workload they apply to, with the reason (README lists them). No '=' in a reason: checkov
# splits the annotation value on it.
WAIVER_DIGEST = (
    "CKV_K8S_43",
    "images are pinned to exact version tags that Renovate updates and the policy pack checks",
)
WAIVER_PULL = (
    "CKV_K8S_15",
    "IfNotPresent on pinned tags so a Pi restarts pods without reaching the registry",
)
WAIVER_CPU_LIMIT = (
    "CKV_K8S_11",
    "no CPU limit on purpose: CFS throttling stalls DNS and web latency while CPU requests keep "
    "scheduling fair",
)
WAIVER_UID = (
    "CKV_K8S_40",
    "runs as the image's own non-root user (runAsNonRoot enforced) rather than a forced UID the "
    "image's files do not belong to",
)
WAIVER_HOST_NETWORK = "CKV_K8S_19"
WAIVER_SECRET_ENV = (
    "CKV_K8S_35",
    "the image reads this credential only from an environment variable; the value comes from a "
    "Secret an ExternalSecret fills, never from the manifest",
)
WAIVER_TOKEN = (
    "CKV_K8S_38",
    "the pod calls the Kubernetes API with its own least-privilege ServiceAccount",
)
# Checks a container relaxed through Exceptions fails; the waiver carries the exception's reason.
EXCEPTION_CHECKS = {
    "CKV_K8S_20": lambda sc: sc.get("allowPrivilegeEscalation") is True,
    "CKV_K8S_22": lambda sc: sc.get("readOnlyRootFilesystem") is False,
    "CKV_K8S_23": lambda sc: sc.get("runAsNonRoot") is False or sc.get("runAsUser") == 0,
    "CKV_K8S_25": lambda sc: bool((sc.get("capabilities") or {}).get("add")),
}
EXCEPTIONS_ANNOTATION = "pi-cluster/security-exceptions"


def checkov_waivers(
    spec: Mapping[str, Any], extra: Mapping[str, str] | None = None, exception_reason: str = ""
) -> dict[str, str]:
    """``checkov.io/skipN`` annotations for the checks this pod spec cannot meet, with reasons.

    ``exception_reason`` is the reason of the containers' :class:`Exceptions` (the pod's
    ``pi-cluster/security-exceptions`` annotation); a relaxed container without one is refused.
    """
    containers = [*spec.get("containers", ()), *spec.get("initContainers", ())]
    pod_uid = (spec.get("securityContext") or {}).get("runAsUser")
    waivers: dict[str, str] = dict([WAIVER_DIGEST])
    for check, relaxed in EXCEPTION_CHECKS.items():
        if any(relaxed(c.get("securityContext") or {}) for c in containers):
            if not exception_reason.strip():
                raise ValueError(f"a container fails checkov {check} but the pod states no exception reason")
            waivers[check] = f"security exception: {exception_reason.strip()}"
    if any("secretKeyRef" in (e.get("valueFrom") or {}) for c in containers for e in c.get("env") or ()):
        waivers.update([WAIVER_SECRET_ENV])
    if spec.get("automountServiceAccountToken") is True:
        waivers.update([WAIVER_TOKEN])
    if any(c.get("imagePullPolicy") != "Always" for c in containers):
        waivers.update([WAIVER_PULL])
    if any("cpu" not in ((c.get("resources") or {}).get("limits") or {}) for c in containers):
        waivers.update([WAIVER_CPU_LIMIT])
    if any(((c.get("securityContext") or {}).get("runAsUser", pod_uid) or 0) < 10000 for c in containers):
        # A pod with a container that runs as root waives the UID check for that reason, not
        # for the non-root one of WAIVER_UID.
        root = "CKV_K8S_23" in waivers  # EXCEPTION_CHECKS: a container relaxed to run as root
        waivers[WAIVER_UID[0]] = waivers["CKV_K8S_23"] if root else WAIVER_UID[1]
    if spec.get("hostNetwork"):
        waivers[WAIVER_HOST_NETWORK] = "hostNetwork: see annotation pi-cluster/host-network"
    waivers.update(extra or {})
    bad = [check for check, reason in waivers.items() if "=" in reason or not reason.strip()]
    if bad:
        raise ValueError(f"checkov waiver(s) {bad} need a reason without '='")
    return {f"checkov.io/skip{i}": f"{check}={waivers[check]}" for i, check in enumerate(sorted(waivers), 1)}


def _workload(
    kind: str,
    api: Any,
    name: str,
    namespace: str,
    pod_template: dict[str, Any],
    spec: dict[str, Any],
    *,
    app: str,
    component: str | None,
    opts: pulumi.ResourceOptions,
    resource_name: str,
    workloads: WorkloadRegistry | None,
    replicas: int,
    checkov_skips: Mapping[str, str] | None,
    extra_annotations: Mapping[str, str] | None = None,
) -> Any:
    """Record the workload for the capacity proof and create it with its checkov waivers."""
    if workloads is not None:
        workloads.add(from_pod_spec(name, namespace, pod_template["spec"], replicas=replicas, kind=kind))
    return api(
        resource_name,
        metadata=metadata(
            name,
            namespace,
            app,
            extra_labels=labels(app, component),
            annotations={
                **(extra_annotations or {}),
                **checkov_waivers(
                    pod_template["spec"],
                    checkov_skips,
                    (pod_template["metadata"].get("annotations") or {}).get(EXCEPTIONS_ANNOTATION, ""),
                ),
            },
        ),
        spec=spec,
        opts=opts,
    )


def _template(
    app: str,
    component: str | None,
    containers: Sequence[Mapping[str, Any]],
    pod: PodOptions | None,
    pod_annotations: Mapping[str, Any] | None,
    exception_reasons: Mapping[str, str] | None,
) -> dict[str, Any]:
    annotations = {**_reasons(containers, pod), **(exception_reasons or {}), **(pod_annotations or {})}
    template_meta: dict[str, Any] = {"labels": labels(app, component)}
    if annotations:
        template_meta["annotations"] = annotations
    return {"metadata": template_meta, "spec": pod_spec(containers, pod)}


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
    workloads: WorkloadRegistry | None = None,
    checkov_skips: Mapping[str, str] | None = None,
) -> k8s.apps.v1.Deployment:
    """A Deployment with stable names and selectors; ``recreate`` for ReadWriteOnce volumes.

    ``workloads`` records it for the capacity proof; ``checkov_skips`` ({check id: reason})
    waives further checkov checks on top of the builders' own.
    """
    app = app or name
    template = _template(app, component, containers, pod, pod_annotations, exception_reasons)
    spec: dict[str, Any] = {
        "replicas": replicas,
        "revisionHistoryLimit": 3,
        "selector": {"matchLabels": selector(app, component)},
        "template": template,
    }
    if recreate:
        spec["strategy"] = {"type": "Recreate"}
    return _workload(
        "Deployment",
        k8s.apps.v1.Deployment,
        name,
        namespace,
        template,
        spec,
        app=app,
        component=component,
        opts=opts,
        resource_name=resource_name,
        workloads=workloads,
        replicas=replicas,
        checkov_skips=checkov_skips,
    )


def daemonset(
    name: str,
    namespace: str,
    containers: Sequence[Mapping[str, Any]],
    *,
    opts: pulumi.ResourceOptions,
    resource_name: str,
    app: str | None = None,
    component: str | None = None,
    pod: PodOptions | None = None,
    pod_annotations: Mapping[str, Any] | None = None,
    exception_reasons: Mapping[str, str] | None = None,
    workloads: WorkloadRegistry | None = None,
    checkov_skips: Mapping[str, str] | None = None,
) -> k8s.apps.v1.DaemonSet:
    """A DaemonSet (one pod on every eligible node); the capacity proof counts it on each."""
    app = app or name
    template = _template(app, component, containers, pod, pod_annotations, exception_reasons)
    spec: dict[str, Any] = {
        "revisionHistoryLimit": 3,
        "selector": {"matchLabels": selector(app, component)},
        "template": template,
    }
    return _workload(
        "DaemonSet",
        k8s.apps.v1.DaemonSet,
        name,
        namespace,
        template,
        spec,
        app=app,
        component=component,
        opts=opts,
        resource_name=resource_name,
        workloads=workloads,
        replicas=1,
        checkov_skips=checkov_skips,
    )


def cronjob(
    name: str,
    namespace: str,
    schedule: str,
    containers: Sequence[Mapping[str, Any]],
    *,
    opts: pulumi.ResourceOptions,
    resource_name: str,
    app: str | None = None,
    component: str | None = None,
    pod: PodOptions | None = None,
    pod_annotations: Mapping[str, Any] | None = None,
    exception_reasons: Mapping[str, str] | None = None,
    workloads: WorkloadRegistry | None = None,
    checkov_skips: Mapping[str, str] | None = None,
    time_zone: str | None = None,
    backoff_limit: int = 2,
    deadline_seconds: int | None = None,
) -> k8s.batch.v1.CronJob:
    """A CronJob that never overlaps itself; the capacity proof counts its pod as always there
    (a job that runs must find room)."""
    app = app or name
    pod = pod or PodOptions()
    if not pod.restart_policy:
        pod = dataclasses.replace(pod, restart_policy="OnFailure")
    template = _template(app, component, containers, pod, pod_annotations, exception_reasons)
    job: dict[str, Any] = {"backoffLimit": backoff_limit, "template": template}
    if deadline_seconds:
        job["activeDeadlineSeconds"] = deadline_seconds
    spec: dict[str, Any] = {
        "schedule": schedule,
        "concurrencyPolicy": "Forbid",
        "successfulJobsHistoryLimit": 1,
        "failedJobsHistoryLimit": 3,
        "jobTemplate": {"spec": job},
    }
    if time_zone:
        spec["timeZone"] = time_zone
    return _workload(
        "CronJob",
        k8s.batch.v1.CronJob,
        name,
        namespace,
        template,
        spec,
        app=app,
        component=component,
        opts=opts,
        resource_name=resource_name,
        workloads=workloads,
        replicas=1,
        checkov_skips=checkov_skips,
    )


def job(
    name: str,
    namespace: str,
    containers: Sequence[Mapping[str, Any]],
    *,
    opts: pulumi.ResourceOptions,
    resource_name: str,
    app: str | None = None,
    component: str | None = None,
    pod: PodOptions | None = None,
    pod_annotations: Mapping[str, Any] | None = None,
    exception_reasons: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    workloads: WorkloadRegistry | None = None,
    checkov_skips: Mapping[str, str] | None = None,
    backoff_limit: int = 1,
    deadline_seconds: int | None = None,
) -> k8s.batch.v1.Job:
    """A one-off Job (``restartPolicy: Never`` unless ``pod`` says otherwise) with the builders'
    checkov waivers; ``annotations`` are added to the Job's own (a content hash, say)."""
    app = app or name
    pod = pod or PodOptions()
    if not pod.restart_policy:
        pod = dataclasses.replace(pod, restart_policy="Never")
    template = _template(app, component, containers, pod, pod_annotations, exception_reasons)
    spec: dict[str, Any] = {"backoffLimit": backoff_limit, "template": template}
    if deadline_seconds:
        spec["activeDeadlineSeconds"] = deadline_seconds
    return _workload(
        "Job",
        k8s.batch.v1.Job,
        name,
        namespace,
        template,
        spec,
        app=app,
        component=component,
        opts=opts,
        resource_name=resource_name,
        workloads=workloads,
        replicas=1,
        checkov_skips=checkov_skips,
        extra_annotations=annotations,
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
    workloads: WorkloadRegistry | None = None,
) -> k8s.core.v1.Service:
    """A ClusterIP Service; ``select=False`` for a selector-less Service (LAN devices).

    ``workloads`` records the pods and target ports behind it, so NetworkPolicies can let
    the ingress controller and Prometheus reach exactly those.
    """
    app = app or name
    spec: dict[str, Any] = {"type": "ClusterIP", "ports": [dict(p) for p in ports]}
    if select:
        spec["selector"] = selector(app, component)
    if workloads is not None:
        # A selector-less Service is recorded too: NetworkPolicies then know it has no pod to open.
        workloads.add_service(
            ServiceInfo(
                name,
                namespace,
                labels(app),
                spec.get("selector", {}),
                {int(p["port"]): p.get("targetPort", p["port"]) for p in ports},
                {str(p["name"]): int(p["port"]) for p in ports if p.get("name")},
            )
        )
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
    workloads: WorkloadRegistry | None = None,
) -> k8s.core.v1.Namespace:
    """A namespace labelled with the Pod Security Standard it enforces.

    Anything weaker than ``restricted`` needs a reason, recorded as an annotation. ``workloads``
    records the resource, so the guardrails placed in the namespace wait for it and nothing else.
    """
    if pod_security != "restricted" and not reason.strip():
        raise ValueError(f"namespace {name}: Pod Security level {pod_security!r} needs a reason")
    extra = {
        "pod-security.kubernetes.io/enforce": pod_security,
        "pod-security.kubernetes.io/warn": pod_security,
        "pod-security.kubernetes.io/audit": pod_security,
    }
    annotations = {"pi-cluster/pod-security-reason": reason} if reason else None
    ns = k8s.core.v1.Namespace(
        resource_name,
        metadata=metadata(name, None, name, extra_labels=extra, annotations=annotations),
        opts=opts,
    )
    if workloads is not None:
        workloads.add_namespace(name, ns)
    return ns


def ephemeral_annotations(reason: str) -> dict[str, str] | None:
    """What an unprotected stateful volume carries: the policy pack's reason (None when the
    volume is protected, i.e. no reason)."""
    return {EPHEMERAL_ANNOTATION: reason} if reason.strip() else None


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
    ephemeral_reason: str = "",
) -> k8s.core.v1.PersistentVolumeClaim:
    """A PVC. Data we cannot lose goes through ``volumes.stateful_pvc`` (protected, backed up);
    a PVC made here directly must say why its data may be lost (``ephemeral_reason``), or the
    policy pack refuses it unprotected."""
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
        metadata=metadata(name, namespace, app or name, annotations=ephemeral_annotations(ephemeral_reason)),
        spec=spec,
        opts=opts,
    )


def helm_release(
    release: str,
    namespace: str,
    chart: ChartSource,
    values: Mapping[str, Any],
    *,
    opts: pulumi.ResourceOptions,
    resource_name: str,
    timeout: int | None = None,
    value_yaml_files: Sequence[pulumi.Asset] | None = None,
) -> k8s.helm.v3.Release:
    """A release of a pinned chart (from its repository, or its package in the chart mirror:
    ``Settings.chart_source``). Atomic, cleaning up on failure: a failed install or upgrade
    rolls back, so a bad values change never leaves a half-upgraded platform behind."""
    return k8s.helm.v3.Release(
        resource_name,
        name=release,
        chart=chart.chart,
        version=chart.version,
        repository_opts={"repo": chart.repo} if chart.repo else None,
        namespace=namespace,
        values=values,
        value_yaml_files=value_yaml_files or None,
        atomic=True,
        cleanup_on_fail=True,
        timeout=timeout,
        opts=opts,
    )
