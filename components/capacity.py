"""Capacity proof: does every node hold what the stack asks of it?

Pure module, no resources. Components record what they run in a :class:`WorkloadRegistry`
(the shared builders in ``components/k8s.py`` do it for our own pods; chart owners call
:func:`from_values` with the requests they set in the chart's values). :func:`plan` places
every pod as the scheduler roughly would: DaemonSets on every eligible node, pinned pods on
their node, the rest one replica at a time on the eligible node that stays least allocated (the
scheduler's default score),
honouring nodeSelector, required node affinity and taints. :func:`enforce` fails the preview
when a node's requests exceed its allocatable CPU or memory (or one pod's memory limit is above
the node's allocatable memory: that pod alone can take the node down), and warns under the
headroom setting and when losing one agent leaves its movable pods nowhere to go.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi

from config.settings import Node, Settings, SettingsError

_MEM_UNITS = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "k": 10**3,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "": 1,
}
_MEM = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|K|M|G|T|)$")
MI = 2**20


class CapacityError(SettingsError):
    """The stack asks more of a node than it has; the message names the node and figures."""


def memory(quantity: Any) -> int:
    """Bytes in a memory quantity (``512Mi``, ``1G``, or a bare number of bytes)."""
    match = _MEM.match(str(quantity).strip())
    if not match:
        raise ValueError(f"{quantity!r} is not a memory quantity")
    return math.ceil(float(match.group(1)) * _MEM_UNITS[match.group(2)])


def cpu(quantity: Any) -> int:
    """Millicores in a CPU quantity (``250m``, ``0.5``, ``2``)."""
    text = str(quantity).strip()
    try:
        return int(text[:-1]) if text.endswith("m") else math.ceil(float(text) * 1000)
    except ValueError:
        raise ValueError(f"{quantity!r} is not a CPU quantity") from None


def fmt_mem(value: int) -> str:
    return f"{value / MI:.0f}Mi"


def fmt_cpu(value: int) -> str:
    return f"{value}m"


@dataclass(frozen=True)
class PodSize:
    """What one pod asks for (sum over containers, or the largest init container if bigger)."""

    cpu_request: int = 0
    memory_request: int = 0
    cpu_limit: int = 0  # 0: no CPU limit on some container (unbounded)
    memory_limit: int = 0  # 0: no memory limit on some container (unbounded)

    @staticmethod
    def of(containers: Sequence[Mapping[str, Any]], init: Sequence[Mapping[str, Any]] = ()) -> PodSize:
        """From containers or bare resources dicts (each read as ContainerSize.of reads it)."""
        return PodSize.of_sizes(
            [ContainerSize.of("", c) for c in containers], [ContainerSize.of("", c) for c in init]
        )

    @staticmethod
    def of_sizes(main: Sequence[ContainerSize], inits: Sequence[ContainerSize] = ()) -> PodSize:
        cpu_lims, mem_lims = [m.cpu_limit for m in main], [m.memory_limit for m in main]
        return PodSize(
            cpu_request=max([sum(m.cpu_request for m in main), *(i.cpu_request for i in inits)]),
            memory_request=max([sum(m.memory_request for m in main), *(i.memory_request for i in inits)]),
            cpu_limit=0 if None in cpu_lims else sum(c or 0 for c in cpu_lims),
            memory_limit=0 if None in mem_lims else sum(m or 0 for m in mem_lims),
        )


@dataclass(frozen=True)
class ContainerSize:
    """One container's requests and limits (``None``: no limit), as the API server defaults them
    (a request left out equals the limit)."""

    name: str  # "" when a chart declaration does not name its containers
    cpu_request: int
    memory_request: int
    cpu_limit: int | None
    memory_limit: int | None

    @staticmethod
    def of(name: str, c: Mapping[str, Any]) -> ContainerSize:
        res = c.get("resources") if "resources" in c else c  # a container or a bare resources dict
        req = (res or {}).get("requests") or {}
        lim = (res or {}).get("limits") or {}
        return ContainerSize(
            name=name,
            cpu_request=cpu(req.get("cpu", lim.get("cpu", 0))),
            memory_request=memory(req.get("memory", lim.get("memory", 0))),
            cpu_limit=cpu(lim["cpu"]) if "cpu" in lim else None,
            memory_limit=memory(lim["memory"]) if "memory" in lim else None,
        )


def _sizes(containers: Sequence[Mapping[str, Any]]) -> tuple[ContainerSize, ...]:
    return tuple(ContainerSize.of(str(c.get("name", "")), c) for c in containers)


@dataclass(frozen=True)
class Workload:
    """A set of identical pods the stack runs, with where they may run."""

    name: str
    namespace: str
    pod: PodSize
    replicas: int = 1
    kind: str = "Deployment"  # Deployment, StatefulSet, DaemonSet, CronJob, Job (or a chart's)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    # required node affinity: OR of terms, each an AND of matchExpressions
    affinity_terms: tuple[tuple[Mapping[str, Any], ...], ...] = ()
    # per container (what `make charts` compares with the pods a chart really renders)
    containers: tuple[ContainerSize, ...] = ()
    init_containers: tuple[ContainerSize, ...] = ()

    @property
    def daemonset(self) -> bool:
        return self.kind == "DaemonSet"

    @property
    def node(self) -> str | None:
        """The node the workload is pinned to, if any."""
        return self.node_selector.get("kubernetes.io/hostname")

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _affinity_terms(affinity: Mapping[str, Any] | None) -> tuple[tuple[Mapping[str, Any], ...], ...]:
    required = ((affinity or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    return tuple(tuple(t.get("matchExpressions") or ()) for t in required.get("nodeSelectorTerms") or ())


def from_pod_spec(
    name: str, namespace: str, spec: Mapping[str, Any], *, replicas: int = 1, kind: str = "Deployment"
) -> Workload:
    """A workload from a pod spec as the shared builders make it (plain dict, camelCase)."""
    containers, inits = _sizes(spec.get("containers") or ()), _sizes(spec.get("initContainers") or ())
    return Workload(
        name=name,
        namespace=namespace,
        pod=PodSize.of_sizes(containers, inits),
        replicas=replicas,
        kind=kind,
        node_selector=dict(spec.get("nodeSelector") or {}),
        tolerations=tuple(spec.get("tolerations") or ()),
        affinity_terms=_affinity_terms(spec.get("affinity")),
        containers=containers,
        init_containers=inits,
    )


def from_values(
    name: str,
    namespace: str,
    resources: Mapping[str, Any] | Sequence[Mapping[str, Any]] = (),
    replicas: int = 1,
    *,
    containers: Mapping[str, Mapping[str, Any]] | None = None,
    init_containers: Mapping[str, Mapping[str, Any]] | None = None,
    daemonset: bool = False,
    kind: str | None = None,
    node: str | None = None,
    node_selector: Mapping[str, str] | None = None,
    tolerations: Sequence[Mapping[str, Any]] = (),
    affinity: Mapping[str, Any] | None = None,
) -> Workload:
    """A Helm-installed workload, declared from the ``resources`` block(s) set in its values.

    ``containers`` maps each container's name (as the chart names it) to its ``{"requests": ...,
    "limits": ...}`` block, in the chart's order; ``init_containers`` likewise. ``resources`` is
    the unnamed form: one block or a list of them. ``node`` pins it like
    ``PodOptions(node_name=...)``; ``kind`` is the chart's kind when neither a Deployment nor
    (``daemonset``) a DaemonSet, e.g. a hook ``Job``. `make charts` holds every chart
    declaration to the pods the chart really renders.
    """
    if containers is not None:
        if resources:
            raise ValueError(f"workload {namespace}/{name}: give resources or containers, not both")
        named = [(n, dict(block)) for n, block in containers.items()]
    else:
        blocks = [resources] if isinstance(resources, Mapping) else list(resources)
        named = [("", dict(block)) for block in blocks]
    inits = [(n, dict(block)) for n, block in (init_containers or {}).items()]
    selector = dict(node_selector or {})
    if node:
        selector["kubernetes.io/hostname"] = node
    sizes = tuple(ContainerSize.of(n, b) for n, b in named)
    init_sizes = tuple(ContainerSize.of(n, b) for n, b in inits)
    return Workload(
        name=name,
        namespace=namespace,
        pod=PodSize.of_sizes(sizes, init_sizes),
        replicas=replicas,
        kind=kind or ("DaemonSet" if daemonset else "Deployment"),
        node_selector=selector,
        tolerations=tuple(tolerations),
        affinity_terms=_affinity_terms(affinity),
        containers=sizes,
        init_containers=init_sizes,
    )


@dataclass(frozen=True)
class ServiceInfo:
    """A Service's pod selector and its ports (service port -> target port), for NetworkPolicies."""

    name: str
    namespace: str
    labels: Mapping[str, str]
    selector: Mapping[str, str]
    ports: Mapping[int, int | str]  # service port -> targetPort (number or container port name)
    port_names: Mapping[str, int] = field(default_factory=dict)  # service port name -> port


class WorkloadRegistry:
    """Every workload, selecting Service and Namespace the stack declares; the capacity proof and
    the guardrails (NetworkPolicies, quotas, what they wait for) derive from it."""

    def __init__(self) -> None:
        self._workloads: dict[str, Workload] = {}
        self._services: dict[tuple[str, str], ServiceInfo] = {}
        self._namespace_resources: dict[str, pulumi.Resource] = {}

    def add(self, workload: Workload) -> Workload:
        if workload.key in self._workloads:
            raise ValueError(f"workload {workload.key} declared twice")
        if workload.replicas < 0:
            raise ValueError(f"workload {workload.key}: replicas {workload.replicas} is negative")
        self._workloads[workload.key] = workload
        return workload

    def add_service(self, service: ServiceInfo) -> ServiceInfo:
        key = (service.namespace, service.name)
        if key in self._services:
            raise ValueError(f"service {service.namespace}/{service.name} declared twice")
        self._services[key] = service
        return service

    def service(
        self,
        name: str,
        namespace: str,
        selector: Mapping[str, str],
        ports: Mapping[int, int | str],
        *,
        labels: Mapping[str, str] | None = None,
        port_names: Mapping[str, int] | None = None,
    ) -> ServiceInfo:
        """Declare a chart's Service so NetworkPolicies can find the pods and ports behind it."""
        return self.add_service(
            ServiceInfo(
                name, namespace, dict(labels or {}), dict(selector), dict(ports), dict(port_names or {})
            )
        )

    def add_namespace(self, name: str, resource: pulumi.Resource) -> None:
        """The resource that creates namespace ``name``: what objects placed in it wait for."""
        if name in self._namespace_resources:
            raise ValueError(f"namespace {name} created twice")
        self._namespace_resources[name] = resource

    def namespace_resource(self, name: str) -> pulumi.Resource:
        if name not in self._namespace_resources:
            raise KeyError(
                f"namespace {name} has no Namespace resource: create it with "
                "components.k8s.namespace(..., workloads=...)"
            )
        return self._namespace_resources[name]

    def workloads(self) -> tuple[Workload, ...]:
        return tuple(self._workloads.values())

    def services(self) -> tuple[ServiceInfo, ...]:
        return tuple(self._services.values())

    def namespaces(self) -> set[str]:
        return {w.namespace for w in self._workloads.values()}


# ---------------------------------------------------------------------------------------------
# Nodes and placement


@dataclass(frozen=True)
class NodeInfo:
    name: str
    role: str
    labels: Mapping[str, str]
    taints: tuple[Mapping[str, str], ...]
    cpu: int  # millicores the hardware has
    memory: int  # bytes the hardware has
    allocatable_cpu: int
    allocatable_memory: int


def nodes_of(settings: Settings) -> list[NodeInfo]:
    """Each node with the labels K3s gives it and its allocatable (hardware minus reserve)."""
    out = []
    for n in settings.nodes:
        reserve = settings.guardrails.reserve_for(n)
        hw_cpu, hw_mem = n.hardware.cores * 1000, memory(n.hardware.memory)
        out.append(
            NodeInfo(
                name=n.name,
                role=n.role,
                labels=_node_labels(n),
                taints=tuple(t.model_dump() for t in n.taints),
                cpu=hw_cpu,
                memory=hw_mem,
                allocatable_cpu=hw_cpu - cpu(reserve.cpu),
                allocatable_memory=hw_mem - memory(reserve.memory),
            )
        )
    return out


def _node_labels(n: Node) -> dict[str, str]:
    labels = {
        "kubernetes.io/hostname": n.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "arm64",
        **n.labels,
    }
    if n.role == "server":
        labels["node-role.kubernetes.io/control-plane"] = "true"
        labels["node-role.kubernetes.io/master"] = "true"
    return labels


def _tolerates(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, str]) -> bool:
    if taint["effect"] == "PreferNoSchedule":
        return True
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint["effect"]:
            continue
        if t.get("operator") == "Exists" and not t.get("key"):
            return True
        if t.get("key") != taint["key"]:
            continue
        if t.get("operator") == "Exists" or t.get("value", "") == taint.get("value", ""):
            return True
    return False


def _expression(labels: Mapping[str, str], e: Mapping[str, Any]) -> bool:
    key, op, values = str(e.get("key")), e.get("operator"), list(e.get("values") or [])
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    return False  # Gt/Lt: not used here; never guess a fit


def eligible(w: Workload, node: NodeInfo) -> bool:
    """Would the scheduler consider ``node`` for ``w`` (selector, required affinity, taints)?"""
    if any(node.labels.get(k) != v for k, v in w.node_selector.items()):
        return False
    if w.affinity_terms and not any(
        all(_expression(node.labels, e) for e in term) for term in w.affinity_terms
    ):
        return False
    return all(_tolerates(w.tolerations, t) for t in node.taints if t["effect"] != "PreferNoSchedule")


@dataclass
class NodeLoad:
    node: NodeInfo
    pods: list[tuple[Workload, int]] = field(default_factory=list)  # (workload, replica index)

    def total(self, attr: str) -> int:
        return sum(getattr(w.pod, attr) for w, _ in self.pods)

    @property
    def cpu_request(self) -> int:
        return self.total("cpu_request")

    @property
    def memory_request(self) -> int:
        return self.total("memory_request")

    @property
    def memory_limit(self) -> int:
        return self.total("memory_limit")

    @property
    def cpu_limit(self) -> int:
        return self.total("cpu_limit")

    def free_memory(self) -> int:
        return self.node.allocatable_memory - self.memory_request

    def free_cpu(self) -> int:
        return self.node.allocatable_cpu - self.cpu_request

    def headroom(self) -> float:
        """The smaller of free CPU and free memory, as a fraction of allocatable."""
        fractions = [
            self.free_cpu() / self.node.allocatable_cpu if self.node.allocatable_cpu > 0 else -1.0,
            self.free_memory() / self.node.allocatable_memory if self.node.allocatable_memory > 0 else -1.0,
        ]
        return min(fractions)

    def score(self, pod: PodSize) -> float:
        """The scheduler's LeastAllocated score: mean free fraction of CPU and memory after ``pod``."""
        n = self.node
        free_cpu = (self.free_cpu() - pod.cpu_request) / max(n.allocatable_cpu, 1)
        free_mem = (self.free_memory() - pod.memory_request) / max(n.allocatable_memory, 1)
        return (free_cpu + free_mem) / 2

    def fits(self, pod: PodSize) -> bool:
        return pod.cpu_request <= self.free_cpu() and pod.memory_request <= self.free_memory()


@dataclass
class Plan:
    """Where every pod landed, and what is wrong with it."""

    loads: dict[str, NodeLoad]
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def table(self) -> dict[str, dict[str, Any]]:
        """Per node: requested, limit, allocatable and headroom (the stack output ``capacity``)."""
        out: dict[str, dict[str, Any]] = {}
        for name, load in self.loads.items():
            n = load.node
            unbounded_cpu = any(w.pod.cpu_limit == 0 for w, _ in load.pods)
            unbounded_mem = any(w.pod.memory_limit == 0 for w, _ in load.pods)
            out[name] = {
                "allocatable": {"cpu": fmt_cpu(n.allocatable_cpu), "memory": fmt_mem(n.allocatable_memory)},
                "requested": {"cpu": fmt_cpu(load.cpu_request), "memory": fmt_mem(load.memory_request)},
                "limit": {
                    "cpu": "unbounded" if unbounded_cpu else fmt_cpu(load.cpu_limit),
                    "memory": "unbounded" if unbounded_mem else fmt_mem(load.memory_limit),
                },
                "headroomPercent": round(load.headroom() * 100, 1),
                "pods": sorted(f"{w.key}" + (f"#{i}" if w.replicas > 1 else "") for w, i in load.pods),
            }
        return out


def _place(loads: dict[str, NodeLoad], workloads: Sequence[Workload], errors: list[str]) -> list[Workload]:
    """Place every replica; return the workloads with a replica that had no eligible node."""
    unplaceable: list[Workload] = []
    fixed = [w for w in workloads if w.daemonset or w.node]
    movable = sorted(
        (w for w in workloads if not (w.daemonset or w.node)),
        key=lambda w: (-w.pod.memory_request, -w.pod.cpu_request, w.key),
    )
    for w in fixed:
        targets = [ld for ld in loads.values() if eligible(w, ld.node)]
        if w.node and w.node not in loads:
            errors.append(f"workload {w.key} is pinned to node {w.node!r}, which is not in nodes")
            continue
        if w.daemonset:
            for ld in targets:
                ld.pods.append((w, 0))
        elif targets:
            for i in range(w.replicas):
                targets[0].pods.append((w, i))
        elif w.replicas:
            unplaceable.append(w)
    for w in movable:
        for i in range(w.replicas):
            targets = [ld for ld in loads.values() if eligible(w, ld.node)]
            if not targets:
                unplaceable.append(w)
                break
            fitting = [ld for ld in targets if ld.fits(w.pod)] or targets
            best = max(fitting, key=lambda ld: (ld.score(w.pod), ld.node.name))
            best.pods.append((w, i))
    return unplaceable


def plan(settings: Settings, workloads: Sequence[Workload]) -> Plan:
    """Place ``workloads`` on the nodes of ``settings`` and check every node."""
    nodes = nodes_of(settings)
    loads = {n.name: NodeLoad(n) for n in nodes}
    result = Plan(loads)
    headroom = settings.guardrails.headroom
    for n in nodes:
        if n.allocatable_cpu <= 0 or n.allocatable_memory <= 0:
            result.errors.append(
                f"node {n.name}: the reserve for k3s and the OS leaves nothing allocatable "
                f"(cpu {fmt_cpu(n.allocatable_cpu)}, memory {fmt_mem(n.allocatable_memory)})"
            )
    for w in _place(loads, workloads, result.errors):
        result.errors.append(
            f"workload {w.key}: no node matches its nodeSelector {dict(w.node_selector)}, affinity "
            "and tolerations"
        )
    for load in loads.values():
        n = load.node
        if load.memory_request > n.allocatable_memory or load.cpu_request > n.allocatable_cpu:
            result.errors.append(
                f"node {n.name}: pods request cpu {fmt_cpu(load.cpu_request)} of "
                f"{fmt_cpu(n.allocatable_cpu)} allocatable and memory {fmt_mem(load.memory_request)} of "
                f"{fmt_mem(n.allocatable_memory)} allocatable ({n.cpu // 1000} cores, "
                f"{fmt_mem(n.memory)} minus the reserve for k3s and the OS); pods: "
                + ", ".join(f"{w.key} {fmt_mem(w.pod.memory_request)}" for w, _ in load.pods)
            )
        elif load.pods and load.headroom() < headroom:
            result.warnings.append(
                f"node {n.name}: headroom {load.headroom():.0%} is under {headroom:.0%} (requests cpu "
                f"{fmt_cpu(load.cpu_request)} of {fmt_cpu(n.allocatable_cpu)}, memory "
                f"{fmt_mem(load.memory_request)} of {fmt_mem(n.allocatable_memory)})"
            )
        for w in sorted({w.key: w for w, _ in load.pods}.values(), key=lambda w: w.key):
            if w.pod.memory_limit > n.allocatable_memory:
                result.errors.append(
                    f"node {n.name}: workload {w.key} has a memory limit of {fmt_mem(w.pod.memory_limit)} "
                    f"per pod, above the node's {fmt_mem(n.allocatable_memory)} allocatable memory"
                )
    result.warnings += _agent_loss(settings, nodes, loads)
    return result


def _agent_loss(settings: Settings, nodes: list[NodeInfo], loads: dict[str, NodeLoad]) -> list[str]:
    """Warn when losing one agent leaves its movable pods no room on the other nodes."""
    warnings = []
    for lost in (n for n in nodes if n.role == "agent"):
        movers = [w for w, _ in loads[lost.name].pods if not (w.daemonset or w.node)]
        if not movers:
            continue
        rest = {n.name: NodeLoad(n, [p for p in loads[n.name].pods]) for n in nodes if n.name != lost.name}
        stranded: list[str] = []
        for w in sorted(movers, key=lambda w: (-w.pod.memory_request, w.key)):
            single = dataclasses.replace(w, replicas=1)
            targets = [ld for ld in rest.values() if eligible(single, ld.node) and ld.fits(single.pod)]
            if not targets:
                stranded.append(f"{w.key} ({fmt_cpu(w.pod.cpu_request)}, {fmt_mem(w.pod.memory_request)})")
                continue
            max(targets, key=lambda ld: (ld.score(single.pod), ld.node.name)).pods.append((single, 0))
        if stranded:
            warnings.append(f"losing node {lost.name} leaves no room elsewhere for: {', '.join(stranded)}")
    return warnings


def enforce(settings: Settings, registry: WorkloadRegistry) -> Plan:
    """Plan, warn, and fail the preview when a node cannot hold what it is given."""
    result = plan(settings, registry.workloads())
    for warning in result.warnings:
        pulumi.log.warn(f"capacity: {warning}")
    if result.errors:
        raise CapacityError("capacity check failed:\n  " + "\n  ".join(result.errors))
    return result
