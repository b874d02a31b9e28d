"""NetworkPolicies, quotas and LimitRanges derived from routes, scrape targets and flows."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components import capacity, guardrails
from components import k8s as kb
from components.capacity import WorkloadRegistry, from_values
from components.guardrails import Flow, FlowRegistry, Peer
from components.metrics import ScrapeTarget
from components.routes import Route
from config.settings import Settings, parse
from tools import mockrun

INGRESS = ("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
PROMETHEUS = ("monitoring", {"app.kubernetes.io/name": "prometheus"})
INGRESS_PEER = Peer(*INGRESS)


@pytest.fixture(scope="module")
def settings() -> Settings:
    values, _ = mockrun.stack_config("pi-k3s")
    return parse({k.split(":", 1)[1]: copy.deepcopy(v) for k, v in values.items()})


def res() -> dict[str, Any]:
    return {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}}


def synthetic() -> tuple[WorkloadRegistry, list[Route], list[ScrapeTarget], list[Flow]]:
    """Two apps behind routes, one exporter, a LAN device route and a Pi-hole -> Unbound flow."""
    reg = WorkloadRegistry()
    for ns, app in (
        ("media", "jellyfin"),
        ("pihole", "pihole"),
        ("pihole", "unbound"),
        ("pihole", "exporter"),
    ):
        reg.add(from_values(app, ns, res()))
    reg.service("jellyfin", "media", kb.selector("jellyfin"), {80: 8096}, labels=kb.labels("jellyfin"))
    reg.service("pihole-web", "pihole", kb.selector("pihole"), {80: "http"}, labels=kb.labels("pihole"))
    reg.service(
        "exporter",
        "pihole",
        kb.selector("exporter"),
        {9617: 9617},
        labels=kb.labels("exporter"),
        port_names={"metrics": 9617},
    )
    reg.service("nas", "external", {}, {5000: 5000})
    routes = [
        Route("jellyfin", "jellyfin", "media", "jellyfin", 80),
        Route("pihole", "pihole", "pihole", "pihole-web", 80),
        Route("nas", "nas", "external", "nas", 5000),
    ]
    targets = [ScrapeTarget("pihole-exporter", "pihole", kb.selector("exporter"), "metrics")]
    flows = FlowRegistry()
    flows.add(
        Flow("pihole-to-unbound", Peer(nodes=True), "pihole", kb.selector("unbound"), (5335,), ("TCP", "UDP"))
    )
    flows.add(
        Flow(
            "homepage-to-jellyfin",
            Peer("homepage", {"app.kubernetes.io/name": "homepage"}),
            "media",
            kb.selector("jellyfin"),
            (8096,),
        )
    )
    return reg, routes, targets, list(flows.flows())


def test_every_app_namespace_gets_default_deny(settings: Settings) -> None:
    reg, routes, targets, flows = synthetic()
    policies, _ = guardrails.network_policies(settings, reg, routes, targets, flows, INGRESS_PEER)
    denies = {p["metadata"]["namespace"] for p in policies if p["metadata"]["name"] == "default-deny-ingress"}
    assert denies == {"media", "pihole", "external"}
    deny = next(p for p in policies if p["metadata"]["name"] == "default-deny-ingress")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}


def test_route_backends_are_reachable_from_the_ingress_controller_and_nothing_else(
    settings: Settings,
) -> None:
    reg, routes, targets, flows = synthetic()
    policies, warnings = guardrails.network_policies(settings, reg, routes, targets, flows, INGRESS_PEER)
    assert warnings == []

    def reach(src: tuple[str, dict[str, str]], ns: str, app: str, port: int | str) -> bool:
        return guardrails.reachable(
            policies,
            source_namespace=src[0],
            source_labels=src[1],
            namespace=ns,
            labels=kb.labels(app),
            port=port,
        )

    assert reach(INGRESS, "media", "jellyfin", 8096)
    assert reach(INGRESS, "pihole", "pihole", "http")
    # nothing else: other ports, other pods, other sources
    assert not reach(INGRESS, "media", "jellyfin", 22)
    assert not reach(INGRESS, "pihole", "unbound", 5335)
    assert not reach(INGRESS, "pihole", "exporter", 9617)
    assert not reach(("media", kb.labels("jellyfin")), "pihole", "pihole", "http")
    assert not reach(("ingress-nginx", {"app.kubernetes.io/name": "other"}), "media", "jellyfin", 8096)
    # Prometheus reaches the exporter's metrics port only
    assert reach(PROMETHEUS, "pihole", "exporter", 9617)
    assert not reach(PROMETHEUS, "pihole", "pihole", "http")
    # declared flows
    assert reach(("homepage", {"app.kubernetes.io/name": "homepage"}), "media", "jellyfin", 8096)
    assert not reach(("homepage", {"app.kubernetes.io/name": "homepage"}), "pihole", "pihole", "http")
    unbound = next(p for p in policies if p["metadata"]["name"] == "allow-pihole-to-unbound")
    assert {"ipBlock": {"cidr": "192.168.1.55/32"}} in unbound["spec"]["ingress"][0]["from"]
    assert {x["protocol"] for x in unbound["spec"]["ingress"][0]["ports"]} == {"TCP", "UDP"}


def test_every_route_backend_has_exactly_one_ingress_allow(settings: Settings) -> None:
    reg, routes, targets, flows = synthetic()
    policies, _ = guardrails.network_policies(settings, reg, routes, targets, flows, INGRESS_PEER)
    ingress_allows = [
        p
        for p in policies
        if any(
            peer.get("namespaceSelector", {}).get("matchLabels") == {guardrails.NS_LABEL: "ingress-nginx"}
            for rule in p["spec"].get("ingress", [])
            for peer in rule["from"]
        )
    ]
    # the LAN device route has no pod behind it: nothing to open
    assert sorted(p["metadata"]["name"] for p in ingress_allows) == [
        "allow-ingress-jellyfin",
        "allow-ingress-pihole",
    ]


def test_undeclared_backend_falls_back_to_the_namespace_with_a_warning(settings: Settings) -> None:
    reg = WorkloadRegistry()
    routes = [Route("grafana", "grafana", "monitoring", "grafana", 80)]
    policies, warnings = guardrails.network_policies(settings, reg, routes, [], [], INGRESS_PEER)
    allow = next(p for p in policies if p["metadata"]["name"] == "allow-ingress-grafana")
    assert allow["spec"]["podSelector"] == {}
    assert warnings and "route grafana" in warnings[0]


def test_reachable_semantics() -> None:
    assert guardrails.reachable([], source_namespace="a", source_labels={}, namespace="b", labels={}, port=1)
    deny = {"metadata": {"namespace": "b"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    assert not guardrails.reachable(
        [deny], source_namespace="a", source_labels={}, namespace="b", labels={}, port=1
    )


def test_quotas_and_limit_ranges_are_sized_from_placed_pods(settings: Settings) -> None:
    reg = synthetic()[0]
    result = capacity.plan(settings, reg.workloads())
    objs, warnings = guardrails.quotas(settings, result, ["media", "pihole", "external"])
    quota = {o["metadata"]["namespace"]: o for o in objs if o["kind"] == "ResourceQuota"}
    # pihole: 3 pods of 10m/32Mi/64Mi + one surge pod, x 1.5
    assert quota["pihole"]["spec"]["hard"] == {
        "pods": "6",
        "requests.cpu": "60m",
        "requests.memory": "192Mi",
        "limits.memory": "384Mi",
    }
    assert {o["metadata"]["namespace"] for o in objs if o["kind"] == "LimitRange"} == {
        "media",
        "pihole",
        "external",
    }
    assert warnings == [
        "namespace external: no workload declared in the registry; its quota assumes 4 pods of the "
        "LimitRange defaults"
    ]


def test_flow_registry_refuses_duplicates_and_portless_flows() -> None:
    flows = FlowRegistry()
    flows.add(Flow("a", Peer(nodes=True), "ns", {}, (1,)))
    with pytest.raises(ValueError, match="twice"):
        flows.add(Flow("a", Peer(nodes=True), "ns", {}, (1,)))
    with pytest.raises(ValueError, match="no port"):
        flows.add(Flow("b", Peer(nodes=True), "ns", {}, ()))


def test_rendered_stack_has_default_deny_quota_and_limits_per_app_namespace(pi_k3s: mockrun.Result) -> None:
    for ns in ("external-secrets",):
        names = {
            (o["kind"], o["metadata"]["name"])
            for o in pi_k3s.manifests()
            if o["metadata"].get("namespace") == ns
        }
        assert {
            ("NetworkPolicy", "default-deny-ingress"),
            ("ResourceQuota", "compute"),
            ("LimitRange", "container-defaults"),
            ("NetworkPolicy", "allow-apiserver-to-webhook"),
        } <= names
    webhook = pi_k3s.manifest("NetworkPolicy", "allow-apiserver-to-webhook", "external-secrets")
    assert webhook["spec"]["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "external-secrets-webhook"}
    }
    assert webhook["spec"]["ingress"][0]["ports"] == [{"port": "webhook", "protocol": "TCP"}]


def test_guardrail_objects_depend_on_the_components_that_make_their_namespaces(
    pi_k3s: mockrun.Result,
) -> None:
    regs = [r for r in pi_k3s.registrations if r.parent == "pi-cluster:guardrails:Guardrails::guardrails"]
    assert regs
    assert all("kubernetes:core/v1:Namespace::secrets-namespace" in r.depends_on for r in regs)
