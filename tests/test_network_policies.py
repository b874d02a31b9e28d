"""NetworkPolicies, quotas and LimitRanges derived from routes, scrape targets and flows."""

from __future__ import annotations

from typing import Any

import pytest

from components import capacity, guardrails, media, monitoring
from components import k8s as kb
from components.capacity import WorkloadRegistry, from_values
from components.guardrails import Flow, FlowRegistry, Peer
from components.metrics import ScrapeTarget
from components.routes import Route
from config.settings import Settings
from tools import mockrun

INGRESS = ("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
PROMETHEUS = ("monitoring", {"app.kubernetes.io/name": "prometheus"})
INGRESS_PEER = Peer(*INGRESS)


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


def test_guardrail_objects_wait_for_their_own_namespace_and_quotas_for_the_defaults(
    pi_k3s: mockrun.Result,
) -> None:
    namespaces = {
        r.plain_inputs["metadata"]["name"]: r.key for r in pi_k3s.by_type("kubernetes:core/v1:Namespace")
    }
    regs = [r for r in pi_k3s.registrations if r.parent == "pi-cluster:guardrails:Guardrails::guardrails"]
    kinds = {r.plain_inputs["kind"] for r in regs}
    assert kinds == {"NetworkPolicy", "ResourceQuota", "LimitRange"}
    defaults = {r.plain_inputs["metadata"]["namespace"]: r.key for r in regs if r.type.endswith("LimitRange")}
    assert "external-services" not in defaults  # podless: a quota of zero pods, nothing to default
    for r in regs:
        ns = r.plain_inputs["metadata"]["namespace"]
        expected = {namespaces[ns]}
        if r.plain_inputs["kind"] == "ResourceQuota" and ns in defaults:
            expected.add(defaults[ns])
        assert set(r.depends_on) == expected, r.key


def test_namespace_resources_are_registered_once_and_a_missing_one_is_named() -> None:
    reg = WorkloadRegistry()
    ns = object()
    reg.add_namespace("media", ns)  # type: ignore[arg-type]
    assert reg.namespace_resource("media") is ns
    with pytest.raises(ValueError, match="namespace media created twice"):
        reg.add_namespace("media", ns)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="namespace photos has no Namespace resource"):
        reg.namespace_resource("photos")


# ---------------------------------------------------------------------------------------------
# The wired stack: every component declares its workloads, Services and flows.

NGINX = (
    "ingress-nginx",
    {
        "app.kubernetes.io/name": "ingress-nginx",
        "app.kubernetes.io/instance": "ingress-nginx",
        "app.kubernetes.io/component": "controller",
    },
)
PROM = ("monitoring", monitoring.PROMETHEUS_PODS)
GRAFANA = ("monitoring", monitoring.GRAFANA_PODS)
ALERTMANAGER = ("monitoring", monitoring.ALERTMANAGER_PODS)
HOMEPAGE = ("homepage", kb.labels("homepage"))
KUMA = ("uptime-kuma", kb.labels("uptime-kuma"))
AUTOKUMA = ("uptime-kuma", kb.labels("autokuma"))
JELLYFIN = ("jellyfin", kb.labels("jellyfin"))
IMMICH = ("immich", media.immich_pods("server"))
VALKEY = ("immich", media.immich_pods("valkey"))
POSTGRES = ("immich", kb.labels(media.POSTGRES_SERVICE))
BACKUP = ("backup-jobs", kb.labels("postgres-backup", "backup"))
DRILL = ("backup-jobs", kb.labels("restore-drill", "backup"))
PVC_BACKUP = ("backup-jobs", kb.labels("pvc-backup", "backup"))
# (route backend pods, the container port its Service forwards to)
ROUTE_BACKENDS = [
    (GRAFANA, 3000),
    (JELLYFIN, "http"),
    (IMMICH, "http"),
    (KUMA, "http"),
    (HOMEPAGE, "http"),
]


def _reach(
    policies: list[dict[str, Any]],
    src: tuple[str, dict[str, str]],
    dst: tuple[str, dict[str, str]],
    port: int | str,
) -> bool:
    return guardrails.reachable(
        policies, source_namespace=src[0], source_labels=src[1], namespace=dst[0], labels=dst[1], port=port
    )


def test_full_stack_route_backends_are_reachable_from_the_controller_and_nothing_else(
    pi_k3s: mockrun.Result,
) -> None:
    policies = pi_k3s.manifests("NetworkPolicy")
    for backend, port in ROUTE_BACKENDS:
        assert _reach(policies, NGINX, backend, port), backend
        assert not _reach(policies, NGINX, backend, 22), backend
        assert not _reach(policies, JELLYFIN, backend, port) or backend == JELLYFIN, backend
    # what no route points at stays closed to the controller
    assert not _reach(policies, NGINX, POSTGRES, "postgres")
    assert not _reach(policies, NGINX, VALKEY, "redis")
    assert not _reach(policies, NGINX, PROM, 9090)
    assert not _reach(policies, NGINX, AUTOKUMA, "http")


def test_full_stack_internal_flows(pi_k3s: mockrun.Result) -> None:
    policies = pi_k3s.manifests("NetworkPolicy")
    allowed = [
        (HOMEPAGE, JELLYFIN, "http"),  # tile siteMonitor and widget
        (HOMEPAGE, IMMICH, "http"),
        (HOMEPAGE, KUMA, "http"),
        (HOMEPAGE, PROM, 9090),  # the Prometheus widget on Grafana's tile
        (AUTOKUMA, KUMA, "http"),
        (KUMA, PROM, 9090),
        (KUMA, ALERTMANAGER, 9093),
        (BACKUP, POSTGRES, 5432),
        (DRILL, POSTGRES, 5432),
        (IMMICH, POSTGRES, "postgres"),
        (IMMICH, VALKEY, "redis"),
        (GRAFANA, PROM, 9090),
        (PROM, ALERTMANAGER, 9093),
        (PROM, ("monitoring", monitoring.KSM_PODS), "http"),
    ]
    for src, dst, port in allowed:
        assert _reach(policies, src, dst, port), (src, dst, port)
    denied = [
        (JELLYFIN, POSTGRES, "postgres"),
        (HOMEPAGE, POSTGRES, "postgres"),
        (PVC_BACKUP, POSTGRES, 5432),  # copies files, never connects
        (AUTOKUMA, JELLYFIN, "http"),
        (KUMA, VALKEY, "redis"),
        (GRAFANA, ALERTMANAGER, 9093),
    ]
    for src, dst, port in denied:
        assert not _reach(policies, src, dst, port), (src, dst, port)


def test_full_stack_host_network_peers(pi_k3s: mockrun.Result, settings: Settings) -> None:
    """Webhooks open to the API server (node addresses and the pod network's gateways); the
    controller's hostPort 443 to the LAN."""
    nodes = {f"{n.address}/32" for n in settings.nodes} | {settings.k3s.cluster_cidr}
    for name, ns, port in (
        ("allow-webhook-from-api-server", "cert-manager", "https"),
        ("allow-operator-webhook-from-api-server", "monitoring", "https"),
        ("allow-admission-webhook", "ingress-nginx", "webhook"),
        ("allow-https-from-lan", "ingress-nginx", 443),
    ):
        rule = pi_k3s.manifest("NetworkPolicy", name, ns)["spec"]["ingress"][0]
        cidrs = {p["ipBlock"]["cidr"] for p in rule["from"]}
        assert nodes <= cidrs, name
        assert rule["ports"] == [{"port": port, "protocol": "TCP"}], name
    lan = pi_k3s.manifest("NetworkPolicy", "allow-https-from-lan", "ingress-nginx")
    assert {"ipBlock": {"cidr": settings.lan_cidr}} in lan["spec"]["ingress"][0]["from"]


def test_full_stack_declares_every_backend_but_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the DNS namespace (wired separately) may fall back to guessed backends."""
    warned: list[str] = []
    monkeypatch.setattr(guardrails.pulumi.log, "warn", lambda msg, *a, **k: warned.append(msg))
    mockrun.run("pi-k3s")
    guesses = [
        w for w in warned if "not declared" in w or "no workload declared" in w or "no declared Service" in w
    ]
    assert all("pihole" in w for w in guesses), guesses
    assert not [w for w in warned if w.startswith("capacity:")]


def test_service_and_url_flows_follow_the_declared_service(monkeypatch: pytest.MonkeyPatch) -> None:
    warned: list[str] = []
    monkeypatch.setattr(guardrails.pulumi.log, "warn", lambda msg, *a, **k: warned.append(msg))
    reg = WorkloadRegistry()
    reg.service("web", "apps", kb.selector("web"), {80: "http"})
    reg.service("nas", "lan", {}, {5000: 5000})
    src = Peer("homepage", kb.selector("homepage"))
    flow = guardrails.url_flow(reg, "to-web", src, "http://web.apps.svc.cluster.local:80/health")
    assert flow == Flow("to-web", src, "apps", kb.selector("web"), ("http",))
    assert guardrails.url_flow(reg, "x", src, "https://web.example.com/") is None
    assert guardrails.service_flow(reg, "to-nas", src, "lan", "nas", 5000) is None  # no pod to open
    assert warned == []
    guessed = guardrails.service_flow(reg, "to-db", src, "apps", "db", 5432)
    assert guessed == Flow("to-db", src, "apps", {}, (5432,))
    assert warned and "Service apps/db is not declared" in warned[0]


def test_flow_registry_add_all_skips_none_and_repeats() -> None:
    flows = FlowRegistry()
    f = Flow("a", Peer(nodes=True), "ns", {}, (80,))
    flows.add_all([f, None, f])
    assert flows.flows() == (f,)
    with pytest.raises(ValueError, match="declared twice"):
        flows.add_all([Flow("a", Peer(nodes=True), "ns", {}, (81,))])


def test_a_namespace_of_selectorless_services_gets_a_zero_pod_quota(settings: Settings) -> None:
    result = capacity.plan(settings, [])
    objs, warnings = guardrails.quotas(settings, result, ["external-services", "apps"], {"external-services"})
    quota = next(o for o in objs if o["metadata"]["namespace"] == "external-services")
    assert quota["spec"] == {"hard": {"pods": "0"}}
    assert [w for w in warnings if "external-services" in w] == []
    assert any("namespace apps" in w for w in warnings)


def test_full_stack_lan_device_namespace_allows_no_pod(pi_k3s: mockrun.Result) -> None:
    quota = pi_k3s.manifest("ResourceQuota", "compute", "external-services")
    assert quota["spec"] == {"hard": {"pods": "0"}}
    names = {
        o["metadata"]["name"]
        for o in pi_k3s.manifests("NetworkPolicy")
        if o["metadata"]["namespace"] == "external-services"
    }
    assert names == {"default-deny-ingress"}  # the LAN device routes have no pod to open


def test_the_full_stack_declares_every_backend_flow_and_workload(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing falls back to a whole-namespace rule or a guessed quota on the real stack."""
    with caplog.at_level("WARNING"):
        mockrun.run("pi-k3s")
    guessed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("guardrails:")]
    assert guessed == []


def test_the_full_stack_check_sees_an_undeclared_service(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above fails when one component forgets to declare its Service."""
    original = kb.service

    def forgetful(*args: Any, **kwargs: Any) -> Any:
        if args and args[0] == "pihole-web":
            kwargs["workloads"] = None
        return original(*args, **kwargs)

    monkeypatch.setattr(kb, "service", forgetful)
    with caplog.at_level("WARNING"):
        mockrun.run("pi-k3s")
    assert any(
        "pihole-web" in r.getMessage() for r in caplog.records if r.getMessage().startswith("guardrails:")
    )
