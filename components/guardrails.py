"""Guardrails: the capacity proof, NetworkPolicies, ResourceQuotas and LimitRanges.

Everything here derives from the registries the other components fill, so a new app gets its
policies without touching this file: the capacity proof from the :class:`WorkloadRegistry`;
per app namespace a default-deny-ingress NetworkPolicy plus allows from the ingress controller
to each route's backend (the frozen route registry), from Prometheus to each scrape target
(the metrics registry) and for each declared internal :class:`Flow`; a ResourceQuota sized from
the namespace's placed pods, and a LimitRange for containers that set nothing.
Create it last in ``__main__.py``, after every route, target, flow and workload is declared.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from components import capacity
from components import k8s as kb
from components.capacity import MI, ServiceInfo, WorkloadRegistry
from components.metrics import ScrapeTarget
from components.routes import Route
from config.settings import Settings

# Namespaces K3s owns; no app policies there.
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "default"})
NS_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Peer:
    """Where traffic comes from.

    ``namespace`` + ``selector``: pods (``selector`` empty: every pod of the namespace).
    ``nodes``: host-network clients (the API server calling a webhook, a hostNetwork pod):
    they arrive from a node address or, across flannel, from a node's pod-network gateway,
    which only the cluster CIDR covers. ``cidrs``: anything else by address (LAN clients).
    """

    namespace: str | None = None
    selector: Mapping[str, str] = field(default_factory=dict)
    nodes: bool = False
    cidrs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Flow:
    """An internal connection the stack needs: ``source`` -> pods ``selector`` in ``namespace``."""

    name: str
    source: Peer
    namespace: str
    selector: Mapping[str, str]
    ports: tuple[int | str, ...]
    protocols: tuple[Literal["TCP", "UDP"], ...] = ("TCP",)


class FlowRegistry:
    """Declared internal flows (Pi-hole -> Unbound, Homepage -> widget backends, ...)."""

    def __init__(self) -> None:
        self._flows: dict[tuple[str, str], Flow] = {}

    def add(self, flow: Flow) -> Flow:
        key = (flow.namespace, flow.name)
        if key in self._flows:
            raise ValueError(f"flow {flow.namespace}/{flow.name} declared twice")
        if not flow.ports:
            raise ValueError(f"flow {flow.namespace}/{flow.name} names no port")
        self._flows[key] = flow
        return flow

    def add_all(self, flows: Iterable[Flow | None]) -> None:
        """Add every flow, skipping ``None`` (nothing to open) and exact repeats."""
        for flow in flows:
            if flow is not None and self._flows.get((flow.namespace, flow.name)) != flow:
                self.add(flow)

    def flows(self) -> tuple[Flow, ...]:
        return tuple(self._flows.values())


_CLUSTER_URL = re.compile(r"^[a-z]+://([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:([0-9]+)(?:/|$)")


def service_flow(
    workloads: WorkloadRegistry,
    name: str,
    source: Peer,
    namespace: str,
    service: str,
    port: int,
    protocols: tuple[Literal["TCP", "UDP"], ...] = ("TCP",),
) -> Flow | None:
    """A flow from ``source`` to the pods behind a declared Service, on the target port its
    ``port`` forwards to. ``None`` for a selector-less Service (a LAN device: no pod to open);
    an undeclared Service falls back, with a warning, to every pod of the namespace on ``port``."""
    svc = _service(workloads, namespace, service)
    if svc is None:
        pulumi.log.warn(
            f"guardrails: flow {name}: Service {namespace}/{service} is not declared in the workload "
            f"registry; allowing every pod of {namespace} on port {port}"
        )
        return Flow(name, source, namespace, {}, (port,), protocols)
    if not svc.selector:
        return None
    return Flow(name, source, namespace, svc.selector, (svc.ports.get(port, port),), protocols)


def url_flow(workloads: WorkloadRegistry, name: str, source: Peer, url: str) -> Flow | None:
    """The flow a client calling an in-cluster ``<svc>.<ns>.svc.cluster.local:<port>`` URL needs;
    ``None`` for any other URL (public hosts go through the ingress controller)."""
    match = _CLUSTER_URL.match(url)
    if not match:
        return None
    service, namespace, port = match.group(1), match.group(2), int(match.group(3))
    return service_flow(workloads, name, source, namespace, service, port)


# ---------------------------------------------------------------------------------------------
# Pure derivation (tested without a cluster)


def app_namespaces(
    workloads: WorkloadRegistry,
    routes: Iterable[Route],
    targets: Iterable[ScrapeTarget],
    flows: Iterable[Flow],
) -> list[str]:
    found = (
        workloads.namespaces()
        | {s.namespace for s in workloads.services()}
        | {r.namespace for r in routes}
        | {t.namespace for t in targets}
        | {f.namespace for f in flows}
    )
    return sorted(found - SYSTEM_NAMESPACES)


def _peer(peer: Peer, settings: Settings) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if peer.namespace is not None:
        entry: dict[str, Any] = {"namespaceSelector": {"matchLabels": {NS_LABEL: peer.namespace}}}
        entry["podSelector"] = {"matchLabels": dict(peer.selector)} if peer.selector else {}
        out.append(entry)
    elif peer.selector:
        out.append({"podSelector": {"matchLabels": dict(peer.selector)}})
    if peer.nodes:
        out += [{"ipBlock": {"cidr": f"{n.address}/32"}} for n in settings.nodes]
        out.append({"ipBlock": {"cidr": settings.k3s.cluster_cidr}})
    out += [{"ipBlock": {"cidr": c}} for c in peer.cidrs]
    return out


def _policy(
    name: str,
    namespace: str,
    pods: Mapping[str, str],
    sources: list[dict[str, Any]],
    ports: Sequence[int | str],
    protocols: Sequence[str] = ("TCP",),
) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": kb.metadata(name, namespace, "guardrails"),
        "spec": {
            "podSelector": {"matchLabels": dict(pods)} if pods else {},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": sources,
                    "ports": [{"port": p, "protocol": proto} for p in ports for proto in protocols],
                }
            ],
        },
    }


def _service(workloads: WorkloadRegistry, namespace: str, name: str) -> ServiceInfo | None:
    return next((s for s in workloads.services() if s.namespace == namespace and s.name == name), None)


def network_policies(
    settings: Settings,
    workloads: WorkloadRegistry,
    routes: Sequence[Route],
    targets: Sequence[ScrapeTarget],
    flows: Sequence[Flow],
    ingress_peer: Peer,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every NetworkPolicy manifest, and warnings for backends that could only be guessed."""
    g = settings.guardrails
    policies: list[dict[str, Any]] = []
    warnings: list[str] = []
    for ns in app_namespaces(workloads, routes, targets, flows):
        deny = _policy("default-deny-ingress", ns, {}, [], [])
        deny["spec"].pop("ingress")
        policies.append(deny)
    ingress = _peer(ingress_peer, settings)
    for r in routes:
        svc = _service(workloads, r.namespace, r.service)
        if svc is not None and not svc.selector:
            continue  # selector-less Service: the backend is a LAN device, no pod to open
        if svc is None:
            warnings.append(
                f"route {r.name}: Service {r.namespace}/{r.service} is not declared in the workload "
                f"registry; allowing the ingress controller to every pod of {r.namespace} on port {r.port}"
            )
            pods: Mapping[str, str] = {}
            port: int | str = r.port
        else:
            pods, port = svc.selector, svc.ports.get(r.port, r.port)
        policies.append(_policy(f"allow-ingress-{r.name}", r.namespace, pods, ingress, [port]))
    prometheus = _peer(Peer(g.monitoring_namespace, g.prometheus_selector), settings)
    for t in targets:
        matches = [
            s
            for s in workloads.services()
            if s.namespace == t.namespace
            and all(s.labels.get(k) == v for k, v in t.selector.items())
            and t.port in s.port_names
        ]
        if matches and t.port in matches[0].port_names:
            svc = matches[0]
            pods, port = svc.selector, svc.ports.get(svc.port_names[t.port], t.port)
        else:
            warnings.append(
                f"scrape target {t.namespace}/{t.name}: no declared Service with labels "
                f"{dict(t.selector)} and port {t.port!r}; allowing Prometheus to the named port "
                f"{t.port!r} on every pod of {t.namespace}"
            )
            pods, port = {}, t.port
        policies.append(_policy(f"allow-metrics-{t.name}", t.namespace, pods, prometheus, [port]))
    for f in flows:
        sources = _peer(f.source, settings)
        policies.append(_policy(f"allow-{f.name}", f.namespace, f.selector, sources, f.ports, f.protocols))
    return policies, warnings


def _matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    wanted = selector.get("matchLabels") or {}
    return all(labels.get(k) == v for k, v in wanted.items())


def reachable(
    policies: Sequence[Mapping[str, Any]],
    *,
    source_namespace: str,
    source_labels: Mapping[str, str],
    namespace: str,
    labels: Mapping[str, str],
    port: int | str,
    protocol: str = "TCP",
    source_ip: str | None = None,
) -> bool:
    """Would a pod reach ``port`` of a pod with ``labels`` in ``namespace`` under ``policies``
    (Kubernetes semantics for pod/namespace peers; pods not selected by any policy are open)?

    With ``source_ip`` the client is a host-network one at that address (the API server calling
    a webhook): only ``ipBlock`` peers can admit it."""
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == namespace and _matches(p["spec"]["podSelector"], labels)
    ]
    if not selecting:
        return True
    for p in selecting:
        for rule in p["spec"].get("ingress") or []:
            ports = rule.get("ports") or []
            if ports and not any(x["port"] == port and x.get("protocol", "TCP") == protocol for x in ports):
                continue
            for peer in rule.get("from") or []:
                if source_ip is not None or "ipBlock" in peer:
                    if source_ip is not None and "ipBlock" in peer and _in_block(source_ip, peer["ipBlock"]):
                        return True
                    continue
                ns_sel = peer.get("namespaceSelector")
                if ns_sel is None:
                    ns_ok = source_namespace == namespace
                else:
                    ns_ok = _matches(ns_sel, {NS_LABEL: source_namespace})
                if ns_ok and _matches(peer.get("podSelector") or {}, source_labels):
                    return True
    return False


def _in_block(ip: str, block: Mapping[str, Any]) -> bool:
    address = ipaddress.ip_address(ip)
    if address not in ipaddress.ip_network(block["cidr"], strict=False):
        return False
    return not any(address in ipaddress.ip_network(c, strict=False) for c in block.get("except") or ())


def _round(value: float, step: int) -> int:
    return max(step, math.ceil(value / step) * step)


def quotas(
    settings: Settings, result: capacity.Plan, namespaces: Sequence[str], podless: Iterable[str] = ()
) -> tuple[list[dict[str, Any]], list[str]]:
    """A ResourceQuota and a LimitRange per namespace, sized from the pods placed there.

    ``podless`` namespaces hold only selector-less Services (LAN devices): their quota allows
    no pod at all."""
    g = settings.guardrails
    lr = g.limit_range
    default_limit = capacity.memory(lr.memory_limit)
    pods_by_ns: dict[str, list[capacity.PodSize]] = defaultdict(list)
    for load in result.loads.values():
        for w, _ in load.pods:
            pods_by_ns[w.namespace].append(w.pod)
    out: list[dict[str, Any]] = []
    warnings: list[str] = []
    factor = 1 + g.quota_headroom
    for ns in namespaces:
        pods = pods_by_ns.get(ns) or []
        if not pods and ns in set(podless):
            out.append(
                {
                    "apiVersion": "v1",
                    "kind": "ResourceQuota",
                    "metadata": kb.metadata("compute", ns, "guardrails"),
                    "spec": {"hard": {"pods": "0"}},
                }
            )
            continue
        if not pods:
            warnings.append(
                f"namespace {ns}: no workload declared in the registry; its quota assumes 4 pods "
                f"of the LimitRange defaults"
            )
            pods = [
                capacity.PodSize(
                    capacity.cpu(lr.cpu_request), capacity.memory(lr.memory_request), 0, default_limit
                )
            ] * 4
        # Room for one extra pod of the largest size: a rolling update surges before it drains.
        surge = max(pods, key=lambda p: (p.memory_request, p.cpu_request))
        every = [*pods, surge]
        limit_total = sum(p.memory_limit or default_limit for p in every)
        hard = {
            "pods": str(math.ceil(len(every) * factor)),
            "requests.cpu": f"{_round(sum(p.cpu_request for p in every) * factor, 10)}m",
            "requests.memory": f"{_round(sum(p.memory_request for p in every) * factor / MI, 16)}Mi",
            "limits.memory": f"{_round(limit_total * factor / MI, 16)}Mi",
        }
        out.append(
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": kb.metadata("compute", ns, "guardrails"),
                "spec": {"hard": hard},
            }
        )
        out.append(
            {
                "apiVersion": "v1",
                "kind": "LimitRange",
                "metadata": kb.metadata("container-defaults", ns, "guardrails"),
                "spec": {
                    "limits": [
                        {
                            "type": "Container",
                            "defaultRequest": {"cpu": lr.cpu_request, "memory": lr.memory_request},
                            "default": {"memory": lr.memory_limit},
                        }
                    ]
                },
            }
        )
    return out, warnings


# ---------------------------------------------------------------------------------------------
# The component


@dataclass(frozen=True)
class GuardrailsArgs:
    settings: Settings
    provider: k8s.Provider
    workloads: WorkloadRegistry
    # The ingress controller's pods (from IngressTls): the source allowed to route backends.
    ingress_peer: Peer
    routes: Sequence[Route] = ()  # the frozen route registry
    metrics: Sequence[ScrapeTarget] = ()
    flows: Sequence[Flow] = ()


class Guardrails(pulumi.ComponentResource):
    """Fails the preview when the nodes cannot hold the stack; otherwise the per-namespace
    NetworkPolicies, ResourceQuota and LimitRange."""

    capacity: dict[str, Any]

    def __init__(self, name: str, args: GuardrailsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pi-cluster:guardrails:Guardrails", name, None, opts)
        s = args.settings
        # Before any child: a stack that does not fit fails here, naming node and figures.
        result = capacity.enforce(s, args.workloads)
        self.capacity = result.table()
        routes, targets, flows = tuple(args.routes), tuple(args.metrics), tuple(args.flows)
        namespaces = app_namespaces(args.workloads, routes, targets, flows)
        policies, warnings = network_policies(s, args.workloads, routes, targets, flows, args.ingress_peer)
        podless = {
            ns
            for ns in namespaces
            if ns not in args.workloads.namespaces()
            and all(not svc.selector for svc in args.workloads.services() if svc.namespace == ns)
            and any(svc.namespace == ns for svc in args.workloads.services())
        }
        limits, quota_warnings = quotas(s, result, namespaces, podless)
        for warning in [*warnings, *quota_warnings]:
            pulumi.log.warn(f"guardrails: {warning}")

        def in_namespace(meta: dict[str, Any], *after: pulumi.Resource) -> pulumi.ResourceOptions:
            ns = args.workloads.namespace_resource(meta["namespace"])
            return pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[ns, *after])

        for obj in policies:
            meta = obj["metadata"]
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{meta['namespace']}-{meta['name']}",
                metadata=meta,
                spec=obj["spec"],
                opts=in_namespace(meta),
            )
        # Defaults before the quota: a quota admits no pod without requests, the LimitRange
        # fills them in, so a pod created between the two is never refused.
        defaults: dict[str, pulumi.Resource] = {}
        for obj in sorted(limits, key=lambda o: o["kind"] != "LimitRange"):
            meta = obj["metadata"]
            resource_name = f"{name}-{meta['namespace']}-{meta['name']}"
            if obj["kind"] == "LimitRange":
                defaults[meta["namespace"]] = k8s.core.v1.LimitRange(
                    resource_name, metadata=meta, spec=obj["spec"], opts=in_namespace(meta)
                )
            else:
                after = [defaults[meta["namespace"]]] if meta["namespace"] in defaults else []
                k8s.core.v1.ResourceQuota(
                    resource_name, metadata=meta, spec=obj["spec"], opts=in_namespace(meta, *after)
                )
        self.register_outputs({"capacity": self.capacity})
