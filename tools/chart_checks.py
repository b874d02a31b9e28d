"""The checks `make charts` holds every rendered chart object to (pure: no helm, no cluster).

- **valid**: built-in kinds against kubernetes-validate's Kubernetes 1.33 schemas (strict); custom
  resources against the repository's CRD schemas (:data:`CRD_SCHEMAS`), else against the CRD a
  chart of the same stack ships (its openAPIV3Schema, unknown fields refused).
- **pod security**: every pod template against its namespace's enforced level (policy/pss.py).
- **capacity**: every pod the chart runs against the declaration the program fed the capacity
  proof (:func:`compare`): containers' requests and limits, replicas, nodeSelector, required
  affinity, tolerations, DaemonSet or not. Operator-made pods (Prometheus, Alertmanager) are
  derived from their custom resource as prometheus-operator builds them (:func:`operator_pods`).
- **network**: the chart's Services against the program's declared ones, every declared flow,
  route, scrape target and webhook against the chart's real pod labels and container ports under
  the stack's NetworkPolicies (components/guardrails.py).

What counts: hook Jobs (pre/post-install/upgrade) are pods the nodes run on every `pulumi up`, so
they are checked like any pod and need a capacity declaration; `helm test` pods are left out (the
Release never runs them: `--skip-tests`); admission webhooks count, and the API server must reach
them from the nodes.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

from components import capacity, guardrails
from components import k8s as kb
from components.capacity import ContainerSize, Workload, WorkloadRegistry
from config.settings import Settings
from policy import pss
from tools import mockrun
from tools.crd_schemas import CRD_SCHEMAS

ROOT = mockrun.ROOT
K8S_VERSION = "1.33.0"
HOOK = "helm.sh/hook"
# Built-in kinds without a namespace (Kubernetes 1.33); custom kinds take the scope of their CRD.
CLUSTER_SCOPED = frozenset(
    {
        "APIService",
        "CSIDriver",
        "CSINode",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "IngressClass",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PriorityClass",
        "RuntimeClass",
        "StorageClass",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
    }
)
FIELDS = ("objects", "invalid", "pod_security", "capacity_mismatches", "network")


def ref(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    hook = (meta.get("annotations") or {}).get(HOOK)
    return f"{obj.get('kind')} {where}{meta.get('name')}" + (f" (hook {hook})" if hook else "")


def cluster_scoped(crds: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    custom = {c["spec"]["names"]["kind"] for c in crds if c["spec"].get("scope") == "Cluster"}
    return CLUSTER_SCOPED | custom


def place(objs: Sequence[dict[str, Any]], namespace: str, scoped: frozenset[str]) -> list[dict[str, Any]]:
    """Objects with the release namespace set where the chart leaves it out (an install puts them
    there), sorted by kind, namespace and name."""
    out = []
    for obj in objs:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if obj.get("kind") not in scoped and not meta.get("namespace"):
            meta["namespace"] = namespace
        out.append(obj)
    return sorted(out, key=lambda o: (o["kind"], o["metadata"].get("namespace") or "", o["metadata"]["name"]))


# ---------------------------------------------------------------------------------------------
# Validity


def is_builtin(api_version: str) -> bool:
    """A kind of Kubernetes itself (kubernetes-validate has its schema), not a custom resource."""
    group = api_version.split("/")[0] if "/" in api_version else ""
    return (
        "." not in group
        or group.endswith(".k8s.io")
        or group in {"", "apps", "batch", "policy", "autoscaling"}
    )


def crd_schema_path(obj: Mapping[str, Any], schemas: Path = CRD_SCHEMAS) -> Path:
    """Where tools/crd_schemas.py writes the schema of a custom resource's kind and version."""
    group, _, version = str(obj.get("apiVersion", "")).partition("/")
    return schemas / group / f"{str(obj.get('kind', '')).lower()}_{version}.json"


def strict(schema: Any) -> Any:
    """A CRD's openAPIV3Schema as the API server applies it to a typed client: an object with
    declared properties takes no other field (unless it preserves unknown fields)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_schemas(crds: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(group, kind, version) -> the strict schema of every version the CRDs serve."""
    out = {}
    for crd in crds:
        spec = crd["spec"]
        for v in spec.get("versions") or ():
            schema = (v.get("schema") or {}).get("openAPIV3Schema")
            if schema:
                out[(spec["group"], spec["names"]["kind"], v["name"])] = strict(schema)
    return out


def validate(obj: Mapping[str, Any], shipped: Mapping[tuple[str, str, str], Any]) -> str | None:
    """Why ``obj`` is invalid, or None."""
    api = obj.get("apiVersion", "")
    try:
        if is_builtin(api):
            kubernetes_validate.validate(dict(obj), K8S_VERSION, strict=True)
            return None
        group, _, version = api.partition("/")
        path = crd_schema_path(obj)
        if path.is_file():
            schema = json.loads(path.read_text())
        elif (group, obj["kind"], version) in shipped:
            schema = shipped[(group, obj["kind"], version)]
        else:
            return f"no schema for {api} {obj['kind']} (neither in {CRD_SCHEMAS} nor a CRD of the stack)"
        jsonschema.Draft7Validator(schema).validate(obj)
        return None
    except kubernetes_validate.SchemaNotFoundError:
        return f"no schema for built-in {api} {obj.get('kind')}"
    except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as err:
        return str(err).splitlines()[0]


# ---------------------------------------------------------------------------------------------
# Pods


@dataclass(frozen=True)
class Pod:
    """A set of identical pods the stack runs, as rendered (by a chart or by the program)."""

    kind: str
    namespace: str
    name: str
    spec: Mapping[str, Any]
    labels: Mapping[str, str]
    replicas: int = 1
    release: str | None = None  # None: one of the program's own objects
    source: str = ""  # "Deployment ns/name", or the custom resource an operator turns into pods

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def host_network(self) -> bool:
        return bool(self.spec.get("hostNetwork"))

    def workload(self) -> Workload:
        return capacity.from_pod_spec(
            self.name, self.namespace, self.spec, replicas=self.replicas, kind=self.kind
        )

    def ports(self) -> list[tuple[str, int, str]]:
        """(name, containerPort, protocol) of every container port."""
        return [
            (str(p.get("name", "")), int(p["containerPort"]), p.get("protocol", "TCP"))
            for c in self.spec.get("containers") or ()
            for p in c.get("ports") or ()
        ]

    def port(self, port: int | str) -> tuple[str, int] | None:
        """(name, number) of a container port given by name or number."""
        for name, number, _ in self.ports():
            if port in (name, number):
                return name, number
        if isinstance(port, int):
            return "", port  # an unnamed port the process listens on (the Service says so)
        return None


def pod_of(obj: Mapping[str, Any], release: str | None) -> Pod | None:
    found = pss.pod_template(obj)
    if found is None:
        return None
    spec, _ = found
    kind = obj["kind"]
    body = obj.get("spec") or {}
    if kind == "CronJob":
        template = ((body.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
    elif kind == "Pod":
        template = {"metadata": obj.get("metadata") or {}}
    else:
        template = body.get("template") or {}
    replicas = 1 if kind in ("DaemonSet", "Job", "CronJob", "Pod") else int(body.get("replicas", 1))
    meta = obj["metadata"]
    return Pod(
        kind=kind,
        namespace=meta["namespace"],
        name=meta["name"],
        spec=spec,
        labels=dict((template.get("metadata") or {}).get("labels") or {}),
        replicas=replicas,
        release=release,
        source=ref(obj),
    )


def _flag(args: Sequence[str], name: str) -> str | None:
    prefix = f"--{name}="
    return next((a[len(prefix) :] for a in args if a.startswith(prefix)), None)


def _reloader(objs: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The config-reloader's resources from the operator's flags (``0``: no value)."""
    for obj in objs:
        found = pss.pod_template(obj)
        for c in (found[0].get("containers") or ()) if found else ():
            args = [str(a) for a in c.get("args") or ()]
            if _flag(args, "prometheus-config-reloader") is None:
                continue
            block: dict[str, Any] = {"requests": {}, "limits": {}}
            for side, key in (("requests", "request"), ("limits", "limit")):
                for res in ("cpu", "memory"):
                    value = _flag(args, f"config-reloader-{res}-{key}")
                    if value not in (None, "0"):
                        block[side][res] = value
            return block
    return None


def operator_pods(objs: Sequence[Mapping[str, Any]], release: str) -> list[Pod]:
    """The pods prometheus-operator makes from the Prometheus and Alertmanager resources of a
    release, as v0.87.1 builds them (pkg/prometheus/server/statefulset.go, pkg/alertmanager/
    statefulset.go, pkg/operator/config_reloader.go): StatefulSet ``<kind>-<name>``, the main
    container with ``spec.resources`` and port ``spec.portName`` (default ``web``), a
    ``config-reloader`` sidecar (port ``reloader-web`` 8080) and an ``init-config-reloader``,
    both with the operator's ``--config-reloader-*`` resources; the selector labels of
    makeSelectorLabels plus ``spec.podMetadata.labels``; nodeSelector, affinity and tolerations
    from the spec. Replicas: ``replicas`` (x ``shards`` for Prometheus)."""
    reloader = _reloader(objs)
    out = []
    for obj in objs:
        kind = obj.get("kind")
        if obj.get("apiVersion") != "monitoring.coreos.com/v1" or kind not in ("Prometheus", "Alertmanager"):
            continue
        if reloader is None:
            raise ValueError(f"{ref(obj)}: no prometheus-operator Deployment in release {release}")
        spec, meta = obj.get("spec") or {}, obj["metadata"]
        name, main = meta["name"], kind.lower()
        port = spec.get("portName") or "web"
        if kind == "Prometheus":
            labels = {
                "app.kubernetes.io/name": "prometheus",
                "app.kubernetes.io/managed-by": "prometheus-operator",
                "app.kubernetes.io/instance": name,
                "operator.prometheus.io/name": name,
                "prometheus": name,
                "operator.prometheus.io/shard": "0",
            }
            ports = [{"name": port, "containerPort": 9090, "protocol": "TCP"}]
            replicas = int(spec.get("replicas", 1)) * int(spec.get("shards", 1))
        else:
            labels = {
                "app.kubernetes.io/name": "alertmanager",
                "app.kubernetes.io/managed-by": "prometheus-operator",
                "app.kubernetes.io/instance": name,
                "alertmanager": name,
            }
            ports = [
                {"name": port, "containerPort": 9093, "protocol": "TCP"},
                {"name": "mesh-tcp", "containerPort": 9094, "protocol": "TCP"},
                {"name": "mesh-udp", "containerPort": 9094, "protocol": "UDP"},
            ]
            replicas = int(spec.get("replicas", 1))
        labels.update((spec.get("podMetadata") or {}).get("labels") or {})
        reloader_port = [{"name": "reloader-web", "containerPort": 8080, "protocol": "TCP"}]
        pod_spec: dict[str, Any] = {
            "containers": [
                {"name": main, "resources": spec.get("resources") or {}, "ports": ports},
                {"name": "config-reloader", "resources": reloader, "ports": reloader_port},
            ],
            "initContainers": [{"name": "init-config-reloader", "resources": reloader}],
        }
        for key in ("nodeSelector", "affinity", "tolerations", "hostNetwork"):
            if spec.get(key):
                pod_spec[key] = spec[key]
        out.append(
            Pod(
                kind="StatefulSet",
                namespace=meta["namespace"],
                name=f"{main}-{name}",
                spec=pod_spec,
                labels=labels,
                replicas=replicas,
                release=release,
                source=f"{ref(obj)} (made by prometheus-operator)",
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# Declared against real pods


def _qty(value: int | None, unit: str) -> str:
    if value is None:
        return "none"
    return capacity.fmt_cpu(value) if unit == "cpu" else capacity.fmt_mem(value)


def _compare_containers(
    prefix: str, declared: Sequence[ContainerSize], real: Sequence[ContainerSize]
) -> list[str]:
    out: list[str] = []
    if declared and all(c.name for c in declared):
        pairs = [(d, next((r for r in real if r.name == d.name), None)) for d in declared]
        extra = [r.name for r in real if r.name not in {d.name for d in declared}]
        out += [f"{prefix}[{n}]: the chart renders this container, the declaration has none" for n in extra]
    else:
        if len(declared) != len(real):
            out.append(
                f"{prefix}: declared {len(declared)} container(s), the chart renders {len(real)} "
                f"({', '.join(r.name for r in real) or 'none'})"
            )
        pairs = list(zip(declared, real, strict=False))
    for d, r in pairs:
        if r is None:
            out.append(f"{prefix}[{d.name}]: declared, but the chart renders no such container")
            continue
        name = r.name or d.name
        for attr, path, unit in (
            ("cpu_request", "resources.requests.cpu", "cpu"),
            ("memory_request", "resources.requests.memory", "memory"),
            ("cpu_limit", "resources.limits.cpu", "cpu"),
            ("memory_limit", "resources.limits.memory", "memory"),
        ):
            dv, rv = getattr(d, attr), getattr(r, attr)
            if dv != rv:
                out.append(
                    f"{prefix}[{name}].{path}: declared {_qty(dv, unit)}, the chart renders {_qty(rv, unit)}"
                )
    return out


def _canon(items: Iterable[Mapping[str, Any]]) -> list[str]:
    return sorted(json.dumps(dict(i), sort_keys=True) for i in items)


def compare(release: str, pod: Pod, declared: Workload | None) -> list[str]:
    """Every difference between the pod a chart renders and its capacity declaration, each naming
    the release, the pod and the field."""
    where = f"release {release}: {pod.kind} {pod.key}"
    if declared is None:
        return [f"{where}: the chart renders this pod, the capacity proof has no declaration of it"]
    real = pod.workload()
    out = _compare_containers(f"{where}: containers", declared.containers, real.containers)
    out += _compare_containers(f"{where}: initContainers", declared.init_containers, real.init_containers)
    if declared.kind != pod.kind:
        out.append(f"{where}: kind: declared {declared.kind}, the chart renders a {pod.kind}")
    if not real.daemonset and declared.replicas != real.replicas:
        out.append(f"{where}: replicas: declared {declared.replicas}, the chart renders {real.replicas}")
    if dict(declared.node_selector) != dict(real.node_selector):
        out.append(
            f"{where}: nodeSelector: declared {dict(declared.node_selector)}, the chart renders "
            f"{dict(real.node_selector)}"
        )
    if _canon(declared.tolerations) != _canon(real.tolerations):
        out.append(
            f"{where}: tolerations: declared {list(declared.tolerations)}, the chart renders "
            f"{list(real.tolerations)}"
        )
    if [_canon(t) for t in declared.affinity_terms] != [_canon(t) for t in real.affinity_terms]:
        out.append(
            f"{where}: affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution: declared "
            f"{[list(t) for t in declared.affinity_terms]}, the chart renders "
            f"{[list(t) for t in real.affinity_terms]}"
        )
    affinity = pod.spec.get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        if (affinity.get(kind) or {}).get("requiredDuringSchedulingIgnoredDuringExecution"):
            out.append(f"{where}: affinity.{kind} is required; the capacity proof does not model it")
    return out


# ---------------------------------------------------------------------------------------------
# The stack: its own objects, the charts' objects and the program's declarations


@dataclass
class Stack:
    name: str
    settings: Settings
    own: list[dict[str, Any]]  # the program's own objects (plain)
    charts: dict[str, list[dict[str, Any]]]  # release -> objects (namespaces placed)
    release_namespaces: dict[str, str]
    workloads: WorkloadRegistry
    flows: tuple[guardrails.Flow, ...] = ()
    crds: list[dict[str, Any]] = field(default_factory=list)

    @staticmethod
    def of(
        result: mockrun.Result, charts: dict[str, list[dict[str, Any]]], namespaces: dict[str, str]
    ) -> Stack:
        program = result.program
        objs = [o for release in charts.values() for o in release]
        return Stack(
            name=result.stack,
            settings=program["settings"],
            own=result.manifests(),
            charts=charts,
            release_namespaces=namespaces,
            workloads=program["workloads"],
            flows=tuple(program["flows"].flows()),
            crds=[o for o in objs if o.get("kind") == "CustomResourceDefinition"],
        )

    def chart_pods(self, release: str) -> list[Pod]:
        objs = self.charts[release]
        pods = [p for p in (pod_of(o, release) for o in objs) if p is not None]
        return pods + operator_pods(objs, release)

    def own_pods(self) -> list[Pod]:
        return [p for p in (pod_of(o, None) for o in self.own) if p is not None]

    def pods(self) -> list[Pod]:
        return self.own_pods() + [p for r in sorted(self.charts) for p in self.chart_pods(r)]

    def policies(self) -> list[dict[str, Any]]:
        return [o for o in self.own if o.get("kind") == "NetworkPolicy"]

    def namespace_levels(self) -> dict[str, str]:
        return {
            o["metadata"]["name"]: (o["metadata"].get("labels") or {}).get(
                "pod-security.kubernetes.io/enforce", "privileged"
            )
            for o in self.own
            if o.get("kind") == "Namespace"
        }

    def services(self) -> list[tuple[str | None, dict[str, Any]]]:
        """(release or None, Service) for every Service of the stack."""
        out: list[tuple[str | None, dict[str, Any]]] = [(None, o) for o in self.own if o["kind"] == "Service"]
        out += [(r, o) for r in sorted(self.charts) for o in self.charts[r] if o["kind"] == "Service"]
        return out


def _empty() -> dict[str, list[str]]:
    return {f: [] for f in FIELDS}


def check(stack: Stack) -> dict[str, dict[str, list[str]]]:
    report = {release: _empty() for release in sorted(stack.charts)}
    shipped = crd_schemas(stack.crds)
    levels = stack.namespace_levels()
    for release, objs in sorted(stack.charts.items()):
        entry = report[release]
        for obj in objs:
            entry["objects"].append(ref(obj))
            problem = validate(obj, shipped)
            if problem:
                entry["invalid"].append(f"{ref(obj)}: {problem}")
            found = pss.pod_template(obj)
            if found is not None:
                ns = obj["metadata"]["namespace"]
                if ns not in levels:
                    entry["pod_security"].append(f"{ref(obj)}: namespace {ns} is not created by the stack")
                    continue
                for v in pss.violations(found[0], levels[ns], found[1]):
                    entry["pod_security"].append(f"{ref(obj)}: {v} (namespace {ns} enforces {levels[ns]})")
    _check_capacity(stack, report)
    for release, line in network_findings(stack):
        report.setdefault(release, _empty())["network"].append(line)
    for entry in report.values():
        for key in FIELDS:
            entry[key] = sorted(set(entry[key]))
    return report


def _owner(stack: Stack, namespace: str) -> str:
    """The release that installs into ``namespace`` (for findings about a declaration)."""
    owners = sorted(r for r, ns in stack.release_namespaces.items() if ns == namespace)
    owners = owners or sorted(
        r
        for r, objs in stack.charts.items()
        if any(o["metadata"].get("namespace") == namespace for o in objs)
    )
    return owners[0] if owners else "(no release)"


def _check_capacity(stack: Stack, report: dict[str, dict[str, list[str]]]) -> None:
    own = {p.key for p in stack.own_pods()}
    declared = {w.key: w for w in stack.workloads.workloads() if w.key not in own}
    matched: set[str] = set()
    for release in sorted(stack.charts):
        for pod in stack.chart_pods(release):
            matched.add(pod.key)
            report[release]["capacity_mismatches"] += compare(release, pod, declared.get(pod.key))
    for key, w in sorted(declared.items()):
        if key not in matched:
            release = _owner(stack, w.namespace)
            report.setdefault(release, _empty())["capacity_mismatches"].append(
                f"release {release}: {w.kind} {key}: declared for the capacity proof, but neither a chart "
                "nor the program renders such a pod"
            )


# ---------------------------------------------------------------------------------------------
# NetworkPolicies against the real pods


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A label selector (matchLabels + matchExpressions) or a plain map of labels."""
    if "matchLabels" in selector or "matchExpressions" in selector:
        plain = selector.get("matchLabels") or {}
        exprs = selector.get("matchExpressions") or ()
    else:
        plain, exprs = selector, ()
    if any(labels.get(k) != v for k, v in plain.items()):
        return False
    return all(capacity._expression(labels, e) for e in exprs)


def _reach(
    policies: Sequence[Mapping[str, Any]],
    source: Pod | str,
    target: Pod,
    port: tuple[str, int],
    protocol: str = "TCP",
) -> bool:
    """Does ``source`` (a pod, or a node address) reach ``port`` (name, number) of ``target``?
    A NetworkPolicy names a port by container port name or number; either opens it."""
    if target.host_network:
        return True  # NetworkPolicies do not apply to host-network pods
    names: list[int | str] = [port[0], port[1]] if port[0] else [port[1]]
    ns, labels, ip = ("", {}, source) if isinstance(source, str) else (source.namespace, source.labels, None)
    return any(
        guardrails.reachable(
            policies,
            source_namespace=ns,
            source_labels=labels,
            namespace=target.namespace,
            labels=target.labels,
            port=p,
            protocol=protocol,
            source_ip=ip,
        )
        for p in names
    )


def _service_targets(
    pods: Sequence[Pod], svc: Mapping[str, Any], port: int | str
) -> tuple[list[Pod], int | str | None]:
    """The pods behind a Service and the target port its ``port`` (number or name) forwards to."""
    spec = svc.get("spec") or {}
    selector = spec.get("selector") or {}
    ns = svc["metadata"]["namespace"]
    backends = [p for p in pods if p.namespace == ns and selector and _selects(selector, p.labels)]
    for sp in spec.get("ports") or ():
        if port in (sp.get("port"), sp.get("name")):
            return backends, sp.get("targetPort", sp.get("port"))
    return backends, None


def network_findings(stack: Stack) -> list[tuple[str, str]]:
    """(release, finding) for every declaration the chart's real pods contradict."""
    out: list[tuple[str, str]] = []
    pods = stack.pods()
    policies = stack.policies()
    nodes = [n.address for n in stack.settings.nodes]
    services = stack.services()
    chart_services = {(o["metadata"]["namespace"], o["metadata"]["name"]): (r, o) for r, o in services if r}
    own_services = {(o["metadata"]["namespace"], o["metadata"]["name"]) for r, o in services if r is None}

    def release_of(ns: str) -> str:
        return _owner(stack, ns)

    # 1. The program's declared Services against the charts' real ones.
    for info in stack.workloads.services():
        key = (info.namespace, info.name)
        if key in own_services:
            continue
        if key not in chart_services:
            if info.selector:
                out.append(
                    (
                        release_of(info.namespace),
                        f"Service {info.namespace}/{info.name}: declared, but no chart renders it",
                    )
                )
            continue
        release, svc = chart_services[key]
        spec = svc.get("spec") or {}
        where = f"Service {info.namespace}/{info.name}"
        if dict(info.selector) != dict(spec.get("selector") or {}):
            out.append(
                (
                    release,
                    f"{where}: selector declared {dict(info.selector)}, the chart renders "
                    f"{spec.get('selector')}",
                )
            )
        real_ports = {int(p["port"]): p.get("targetPort", p["port"]) for p in spec.get("ports") or ()}
        backends = [p for p in pods if p.namespace == info.namespace and _selects(info.selector, p.labels)]

        declared_ports = {int(k): v for k, v in info.ports.items()}
        if set(declared_ports) != set(real_ports) or not all(
            _same_port(backends, declared_ports[k], real_ports[k]) for k in real_ports
        ):
            out.append(
                (release, f"{where}: ports declared {dict(info.ports)}, the chart renders {real_ports}")
            )
        names = {p.get("name"): int(p["port"]) for p in spec.get("ports") or () if p.get("name")}
        for name, number in info.port_names.items():
            if names.get(name) != number:
                out.append(
                    (release, f"{where}: port name {name}={number} declared, the chart renders {names}")
                )
        labels = svc["metadata"].get("labels") or {}
        if any(labels.get(k) != v for k, v in info.labels.items()):
            out.append((release, f"{where}: labels declared {dict(info.labels)}, the chart renders {labels}"))

    # 2. Declared flows into (or out of) chart pods: their selectors and ports against the real pods.
    for flow in stack.flows:
        targets = [p for p in pods if p.namespace == flow.namespace and _selects(flow.selector, p.labels)]
        involves_chart = any(p.release for p in targets) or (
            flow.source.namespace is not None
            and any(
                p.release
                and p.namespace == flow.source.namespace
                and _selects(flow.source.selector, p.labels)
                for p in pods
            )
        )
        chart_ns = any(p.release and p.namespace == flow.namespace for p in pods)
        if not targets and chart_ns:
            out.append(
                (
                    release_of(flow.namespace),
                    f"flow {flow.name}: selector {dict(flow.selector)} matches no pod in {flow.namespace}",
                )
            )
            continue
        if not involves_chart:
            continue
        sources: list[Pod | str]
        if flow.source.namespace is not None:
            sources = [
                p
                for p in pods
                if p.namespace == flow.source.namespace and _selects(flow.source.selector, p.labels)
            ]
            if not sources:
                out.append(
                    (
                        release_of(flow.source.namespace),
                        f"flow {flow.name}: source selector {dict(flow.source.selector)} matches no pod "
                        f"in {flow.source.namespace}",
                    )
                )
        else:
            sources = list(nodes) if flow.source.nodes else []
        for target in targets:
            for port in flow.ports:
                resolved = target.port(port)
                owner = target.release or release_of(target.namespace)
                if resolved is None:
                    out.append((owner, f"flow {flow.name}: {target.source} has no container port {port!r}"))
                    continue
                for proto in flow.protocols:
                    for src in sources:
                        if not _reach(policies, src, target, resolved, proto):
                            who = src if isinstance(src, str) else src.source
                            out.append(
                                (owner, f"flow {flow.name}: {who} cannot reach {target.source} port {port!r}")
                            )

    # 3. Routes (the program's Ingresses) to chart Services, from the controller's real pods.
    controller_ns = stack.settings.ingress.controller
    controllers = [p for p in pods if p.release == controller_ns and p.kind in ("DaemonSet", "Deployment")]
    for ing in (o for o in stack.own if o["kind"] == "Ingress"):
        for rule in ing["spec"].get("rules") or ():
            for path in (rule.get("http") or {}).get("paths") or ():
                backend = path["backend"]["service"]
                key = (ing["metadata"]["namespace"], backend["name"])
                if key not in chart_services:
                    continue
                release, svc = chart_services[key]
                port = backend["port"].get("number", backend["port"].get("name"))
                out += _service_reach(
                    policies, pods, svc, port, controllers, release, f"route {ing['metadata']['name']}"
                )

    # 4. Scrape targets (every ServiceMonitor) from the real Prometheus pods.
    prometheus = [
        p
        for p in pods
        if p.namespace == stack.settings.guardrails.monitoring_namespace
        and _selects(stack.settings.guardrails.prometheus_selector, p.labels)
        and p.labels.get("app.kubernetes.io/name") == "prometheus"
    ]
    monitors: list[tuple[str | None, dict[str, Any]]] = [
        (None, o) for o in stack.own if o["kind"] == "ServiceMonitor"
    ]
    monitors += [
        (r, o) for r in sorted(stack.charts) for o in stack.charts[r] if o["kind"] == "ServiceMonitor"
    ]
    stack_namespaces = set(stack.namespace_levels())
    for sm_release, sm in monitors:
        spec = sm["spec"]
        ns_sel = spec.get("namespaceSelector") or {}
        if ns_sel.get("any"):
            namespaces = stack_namespaces
        else:
            namespaces = set(ns_sel.get("matchNames") or [sm["metadata"]["namespace"]])
        namespaces &= stack_namespaces  # kube-system and default hold no policies of ours
        matched = [
            (r, s)
            for r, s in services
            if s["metadata"]["namespace"] in namespaces
            and _selects(spec.get("selector") or {}, s["metadata"].get("labels") or {})
        ]
        where = f"ServiceMonitor {sm['metadata'].get('namespace')}/{sm['metadata']['name']}"
        for endpoint in spec.get("endpoints") or ():
            port = endpoint.get("port") or endpoint.get("targetPort")
            # Prometheus scrapes the selected Services that have the endpoint's port; others are
            # skipped, so a selector that also matches a Service without it is harmless.
            scraped = [(r, svc) for r, svc in matched if _service_targets(pods, svc, port)[1] is not None]
            if not scraped and matched and any(r for r, _ in matched):
                out.append(
                    (sm_release or matched[0][0] or "", f"{where}: no selected Service has port {port!r}")
                )
            for r, svc in scraped:
                if r is None and sm_release is None:
                    continue  # the program's own pair: tests/test_network_policies.py covers it
                out += _service_reach(policies, pods, svc, port, prometheus, r or sm_release or "", where)

    # 5. Webhooks (admission and CRD conversion) from the API server on every node.
    for release, objs in sorted(stack.charts.items()):
        for obj in objs:
            for name, client in _webhook_clients(obj):
                service = client.get("service")
                if not service:
                    continue
                key = (service["namespace"], service["name"])
                found = chart_services.get(key)
                if found is None:
                    if key not in own_services:
                        out.append(
                            (release, f"{ref(obj)} webhook {name}: Service {key[0]}/{key[1]} is not rendered")
                        )
                    continue
                out += _service_reach(
                    policies,
                    pods,
                    found[1],
                    int(service.get("port", 443)),
                    nodes,
                    found[0],
                    f"{ref(obj)} webhook {name}",
                )
    return out


def _same_port(backends: Sequence[Pod], declared: int | str, real: int | str) -> bool:
    """A target port by name or by number is the same when the backends resolve them alike."""
    if declared == real:
        return True
    resolved = [(b.port(declared), b.port(real)) for b in backends]
    return bool(resolved) and all(a is not None and c is not None and a[1] == c[1] for a, c in resolved)


def _webhook_clients(obj: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    kind = obj.get("kind")
    if kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        return [(w.get("name", ""), w.get("clientConfig") or {}) for w in obj.get("webhooks") or ()]
    if kind == "CustomResourceDefinition":
        conversion = (obj.get("spec") or {}).get("conversion") or {}
        if conversion.get("strategy") == "Webhook":
            return [("conversion", (conversion.get("webhook") or {}).get("clientConfig") or {})]
    return []


def _service_reach(
    policies: Sequence[Mapping[str, Any]],
    pods: Sequence[Pod],
    svc: Mapping[str, Any],
    port: int | str,
    sources: Sequence[Pod | str],
    release: str,
    what: str,
) -> list[tuple[str, str]]:
    where = f"Service {svc['metadata']['namespace']}/{svc['metadata']['name']}"
    backends, target_port = _service_targets(pods, svc, port)
    if target_port is None:
        return [(release, f"{what}: {where} has no port {port!r}")]
    if not backends:
        return [(release, f"{what}: {where} selects no pod")]
    if not sources:
        return [(release, f"{what}: no client pod to reach {where} from")]
    out = []
    for pod in backends:
        resolved = pod.port(target_port)
        if resolved is None:
            out.append((release, f"{what}: {pod.source} has no container port {target_port!r} ({where})"))
            continue
        for src in sources:
            if not _reach(policies, src, pod, resolved):
                who = src if isinstance(src, str) else src.source
                out.append((release, f"{what}: {who} cannot reach {pod.source} port {target_port!r}"))
    return out


# ---------------------------------------------------------------------------------------------
# checkov waivers on chart objects, and the report


# checkov checks a chart's object fails on purpose, with the reason, per (release, kind, name).
# On pod templates the builders' convention waivers (kb.checkov_waivers: digest, pull policy, CPU
# limit, UID, secret env, API token, host network) are derived from the pod spec as for our own
# workloads; a container relaxed below the builders' defaults (writable root filesystem, added
# capability) needs an ``EXCEPTION`` reason. Anything not listed here fails `make scan`.
EXCEPTION = "exception"  # the reason kb.checkov_waivers gives the relaxed containers' checks
_TOKEN = (
    "CKV_K8S_38",
    "the pod works through the Kubernetes API with the ServiceAccount and RBAC its chart creates",
)
_CERT_JOB = (
    "CKV_K8S_38",
    "the certificate Job writes the webhook's Secret and patches the webhook configuration through the API",
)
_CA_INJECT = (
    "CKV_K8S_155",
    "it writes the CA bundle into the chart's own webhook configurations (the chart's ClusterRole)",
)
_CERT_SECRET = (
    "CKV2_K8S_5",
    "the certificate Job creates and reads the webhook's TLS Secret (the chart's Role)",
)
CHECKOV_WAIVERS: dict[tuple[str, str, str], dict[str, str]] = {
    ("ingress-nginx", "DaemonSet", "ingress-nginx-controller"): {
        EXCEPTION: "nginx writes its generated configuration and temp files to the image's filesystem and "
        "binds 443 inside the pod with NET_BIND_SERVICE (ingress-nginx chart 4.15.1 defaults)",
        "CKV_K8S_26": "the controller binds hostPort 443 on the ingress node (Pi-hole owns :80 there)",
    },
    ("ingress-nginx", "Job", "ingress-nginx-admission-create"): dict([_CERT_JOB]),
    ("ingress-nginx", "Job", "ingress-nginx-admission-patch"): dict([_CERT_JOB]),
    ("ingress-nginx", "ClusterRole", "ingress-nginx-admission"): dict([_CA_INJECT]),
    ("ingress-nginx", "RoleBinding", "ingress-nginx-admission"): dict([_CERT_SECRET]),
    ("traefik", "DaemonSet", "traefik"): {
        "CKV_K8S_26": "the controller binds hostPort 443 on the ingress node (Pi-hole owns :80 there)",
    },
    ("cert-manager", "Deployment", "cert-manager"): {
        **dict([_TOKEN]),
        "CKV_K8S_9": "cert-manager chart v1.21.1 gives the controller a liveness probe only",
    },
    ("cert-manager", "Deployment", "cert-manager-cainjector"): {
        **dict([_TOKEN]),
        "CKV_K8S_8": "cert-manager chart v1.21.1 gives the cainjector no probe",
        "CKV_K8S_9": "cert-manager chart v1.21.1 gives the cainjector no probe",
    },
    ("cert-manager", "Deployment", "cert-manager-webhook"): dict([_TOKEN]),
    ("cert-manager", "Job", "cert-manager-startupapicheck"): {
        "CKV_K8S_38": "the post-install check asks the API whether the webhook answers",
    },
    ("cert-manager", "ClusterRole", "cert-manager-cainjector"): dict([_CA_INJECT]),
    ("external-secrets", "Deployment", "external-secrets"): {
        "CKV_K8S_8": "external-secrets chart 1.2.0 leaves the controller's liveness probe off and has no "
        "readiness probe; a stuck sync shows in the ExternalSecrets' status and metrics",
        "CKV_K8S_9": "external-secrets chart 1.2.0 has no readiness probe for the controller",
    },
    ("external-secrets", "Deployment", "external-secrets-webhook"): {
        "CKV_K8S_8": "external-secrets chart 1.2.0 gives the webhook a readiness probe only",
    },
    ("external-secrets", "Deployment", "external-secrets-cert-controller"): {
        "CKV_K8S_8": "external-secrets chart 1.2.0 gives the cert controller a readiness probe only",
    },
    ("external-secrets", "ClusterRole", "external-secrets-cert-controller"): dict([_CA_INJECT]),
    ("kube-prometheus-stack", "Deployment", "kube-prometheus-stack-grafana"): {
        "CKV_K8S_22": "Grafana writes plugins, sessions and temp files beside its data (grafana chart 10.4.0 "
        "container context)",
        "CKV_K8S_8": "the dashboard and datasource sidecars have no health endpoint; Grafana's own "
        "container has both probes",
        "CKV_K8S_9": "the dashboard and datasource sidecars have no health endpoint; Grafana's own "
        "container has both probes",
    },
    ("kube-prometheus-stack", "ClusterRoleBinding", "kube-prometheus-stack-grafana-clusterrolebinding"): {
        "CKV2_K8S_5": "Grafana's sidecars read the dashboards and datasources they load from labelled "
        "ConfigMaps and Secrets (the grafana chart's ClusterRole)",
    },
    ("kube-prometheus-stack", "Job", "kube-prometheus-stack-admission-create"): dict([_CERT_JOB]),
    ("kube-prometheus-stack", "Job", "kube-prometheus-stack-admission-patch"): dict([_CERT_JOB]),
    ("kube-prometheus-stack", "ClusterRole", "kube-prometheus-stack-admission"): dict([_CA_INJECT]),
    ("kube-prometheus-stack", "RoleBinding", "kube-prometheus-stack-admission"): dict([_CERT_SECRET]),
    ("kube-prometheus-stack", "ClusterRole", "kube-prometheus-stack-operator"): {
        "CKV_K8S_49": "prometheus-operator manages every monitoring.coreos.com resource (the chart's "
        "ClusterRole)",
    },
    ("kube-prometheus-stack", "DaemonSet", "kube-prometheus-stack-prometheus-node-exporter"): {
        "CKV_K8S_17": "node-exporter reads the host's processes (hostPID; its namespace is privileged)",
    },
    ("immich", "Deployment", "immich-server"): {
        "CKV_K8S_22": "immich-server writes caches and temp files in its image; its paths are not vetted for "
        "a read-only root filesystem (immich chart 0.10.3)",
    },
    ("immich", "Deployment", "immich-valkey"): {
        "CKV_K8S_22": "the valkey image is not vetted for a read-only root filesystem (immich chart 0.10.3)",
    },
}


def with_waivers(
    release: str, objs: Sequence[dict[str, Any]], used: set[tuple[str, str, str]]
) -> list[dict[str, Any]]:
    """The objects with their checkov waivers as annotations (what `make scan` reads); the keys
    of :data:`CHECKOV_WAIVERS` that matched are added to ``used``."""
    out = []
    for obj in objs:
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        key = (release, obj["kind"], meta["name"])
        if key in CHECKOV_WAIVERS:
            used.add(key)
        extra = dict(CHECKOV_WAIVERS.get(key, {}))
        reason = extra.pop(EXCEPTION, "")
        found = pss.pod_template(obj)
        if found is not None:
            try:
                notes = kb.checkov_waivers(found[0], extra, reason)
            except ValueError:  # a relaxed container without a reason: only `extra`, checkov fails it
                notes = kb.checkov_waivers({}, extra)
        elif extra:
            notes = {f"checkov.io/skip{i}": f"{c}={extra[c]}" for i, c in enumerate(sorted(extra), 1)}
        else:
            notes = {}
        if notes:
            meta["annotations"] = {**(meta.get("annotations") or {}), **notes}
        out.append(obj)
    return out


def findings(report: Mapping[str, Mapping[str, Mapping[str, list[str]]]]) -> list[str]:
    return [
        f"{variant} {release} {key}: {line}"
        for variant, releases in sorted(report.items())
        for release, entry in sorted(releases.items())
        for key in FIELDS[1:]
        for line in entry.get(key, [])
    ]


def summary(report: Mapping[str, Mapping[str, Mapping[str, list[str]]]]) -> list[str]:
    lines = []
    for variant, releases in sorted(report.items()):
        for release, entry in sorted(releases.items()):
            counts = ", ".join(f"{len(entry.get(k, []))} {k}" for k in FIELDS)
            lines.append(f"{variant:16s} {release:24s} {counts}")
    return lines
