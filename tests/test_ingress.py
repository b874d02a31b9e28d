"""IngressTls: controller charts, cert-manager, issuers, the wildcard record, one Ingress per route."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from components.ingress import ACME_SERVERS, _Nginx, body_size_bytes
from components.routes import Route, RouteError, RouteRegistry
from config.settings import SettingsError, parse
from tests.conftest import crd_schema_dir, raw_config
from tests.ingress_runs import stack_values, with_app, with_ingress
from tests.test_manifests import validate_builtin, validate_custom
from tests.test_settings import _set
from tools import mockrun

COMPONENT = "pi-cluster:ingress:IngressTls::ingress"
DOMAIN = "lab.mtgibbs.dev"
CLASS = {"ingress-nginx": "nginx", "traefik": "traefik"}

# Which chart installs the CRDs of which API group (by chart name, so any release counts).
CRD_CHARTS = {
    "external-secrets.io": "external-secrets",
    "cert-manager.io": "cert-manager",
    "acme.cert-manager.io": "cert-manager",
    "traefik.io": "traefik",
    "monitoring.coreos.com": "kube-prometheus-stack",
}


@pytest.fixture(scope="module")
def nginx_app(tmp_path_factory: pytest.TempPathFactory) -> mockrun.Result:
    return with_app(tmp_path_factory.mktemp("nginx"))


@pytest.fixture(scope="module")
def traefik_app(tmp_path_factory: pytest.TempPathFactory) -> mockrun.Result:
    return with_app(tmp_path_factory.mktemp("traefik"), with_ingress(controller="traefik"))


@pytest.fixture(params=["nginx", "traefik"])
def run(request: pytest.FixtureRequest) -> mockrun.Result:
    return request.getfixturevalue(f"{request.param}_app")


def _controller(result: mockrun.Result) -> str:
    return result.find("kubernetes:helm.sh/v3:Release::ingress-controller").plain_inputs["name"]


# --- issuers and the Cloudflare token -------------------------------------------------------


def test_cluster_issuers_use_the_exact_acme_directories(pi_k3s: mockrun.Result) -> None:
    prod = pi_k3s.manifest("ClusterIssuer", "letsencrypt-prod")["spec"]["acme"]
    staging = pi_k3s.manifest("ClusterIssuer", "letsencrypt-staging")["spec"]["acme"]
    assert prod["server"] == "https://acme-v02.api.letsencrypt.org/directory"
    assert staging["server"] == "https://acme-staging-v02.api.letsencrypt.org/directory"
    for acme in (prod, staging):
        assert acme["email"] == stack_values()["pi-cluster:ingress"]["acmeEmail"]
        assert acme["solvers"][0]["selector"] == {"dnsZones": [DOMAIN]}
        assert "cloudflare" in acme["solvers"][0]["dns01"]
    assert prod["privateKeySecretRef"] != staging["privateKeySecretRef"]


def test_solver_token_is_a_secret_an_external_secret_creates(pi_k3s: mockrun.Result) -> None:
    made = {
        (es["metadata"]["namespace"], es["spec"]["target"]["name"]): {
            d["secretKey"] for d in es["spec"]["data"]
        }
        for es in pi_k3s.manifests("ExternalSecret")
    }
    for issuer in pi_k3s.manifests("ClusterIssuer"):
        ref = issuer["spec"]["acme"]["solvers"][0]["dns01"]["cloudflare"]["apiTokenSecretRef"]
        # A ClusterIssuer reads its Secrets from cert-manager's own namespace.
        assert ref["key"] in made.get(("cert-manager", ref["name"]), set()), ref


def test_cert_manager_chart_crds_resources_and_public_resolvers(pi_k3s: mockrun.Result) -> None:
    release = pi_k3s.find("kubernetes:helm.sh/v3:Release::ingress-cert-manager").plain_inputs
    assert (release["chart"], release["version"]) == ("cert-manager", "v1.21.1")
    values = release["values"]
    assert values["crds"]["enabled"] is True
    assert values["dns01RecursiveNameserversOnly"] is True
    servers = values["dns01RecursiveNameservers"].split(",")
    assert servers and all(not s.startswith(("192.168.", "10.", "127.")) for s in servers)
    for part in ("webhook", "cainjector", "startupapicheck"):
        assert set(values[part]["resources"]) == {"requests", "limits"}


# --- controllers ------------------------------------------------------------------------------


def test_ingress_nginx_binds_hostport_443_only(pi_k3s: mockrun.Result) -> None:
    release = pi_k3s.find("kubernetes:helm.sh/v3:Release::ingress-controller").plain_inputs
    assert (release["chart"], release["version"]) == ("ingress-nginx", "4.15.1")
    ctl = release["values"]["controller"]
    # The chart gives every containerPort a hostPort: http's is "0" (none), not a deleted key.
    assert ctl["hostPort"] == {"enabled": True, "ports": {"https": 443, "http": "0"}}
    assert ctl["service"]["enableHttp"] is False
    assert ctl["metrics"]["enabled"] is True
    assert ctl["nodeSelector"] == {"kubernetes.io/os": "linux", "kubernetes.io/hostname": "pi-k3s"}
    assert "valueYamlFiles" not in release and "allowNullValues" not in release


def test_traefik_binds_hostport_443_only(traefik_app: mockrun.Result) -> None:
    release = traefik_app.find("kubernetes:helm.sh/v3:Release::ingress-controller").plain_inputs
    assert (release["chart"], release["version"]) == ("traefik", "41.3.0")
    values = release["values"]
    assert values["ports"]["websecure"]["hostPort"] == 443
    assert "hostPort" not in values["ports"]["web"]
    assert values["service"]["spec"]["type"] == "ClusterIP"  # no ServiceLB on :80
    assert values["ingressClass"]["name"] == "traefik"


def test_controller_namespace_admits_hostport_with_a_reason(pi_k3s: mockrun.Result) -> None:
    ns = pi_k3s.manifest("Namespace", "ingress-nginx")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert "hostPort 443" in ns["metadata"]["annotations"]["pi-cluster/pod-security-reason"]


# --- Ingresses --------------------------------------------------------------------------------


def test_every_ingress_has_tls_issuer_and_class(run: mockrun.Result) -> None:
    ingresses = run.manifests("Ingress")
    names = {i["metadata"]["name"] for i in ingresses}
    assert names == set(run.outputs["urls"])
    assert {"nas", "unifi", "photos"} <= names
    for ing in ingresses:
        name, spec = ing["metadata"]["name"], ing["spec"]
        assert spec["ingressClassName"] == CLASS[_controller(run)]
        assert ing["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"
        hosts = [r["host"] for r in spec["rules"]]
        assert spec["tls"] == [{"hosts": hosts, "secretName": f"{name}-tls"}]


def test_hosts_are_under_the_domain_and_unique(run: mockrun.Result) -> None:
    hosts = [r["host"] for i in run.manifests("Ingress") for r in i["spec"]["rules"]]
    assert len(hosts) == len(set(hosts))
    assert all(h.endswith(f".{DOMAIN}") and "." not in h.removesuffix(f".{DOMAIN}") for h in hosts)


def test_issuer_is_a_setting(tmp_path: Path) -> None:
    result = mockrun.run(overrides=with_ingress(issuer="letsencrypt-staging"))
    for ing in result.manifests("Ingress"):
        assert ing["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt-staging"


def test_urls_output_lists_every_route(run: mockrun.Result) -> None:
    urls = run.outputs["urls"]
    hosts = {i["metadata"]["name"]: i["spec"]["rules"][0]["host"] for i in run.manifests("Ingress")}
    assert urls == {name: f"https://{host}" for name, host in hosts.items()}


def test_nginx_route_annotations(nginx_app: mockrun.Result) -> None:
    unifi = nginx_app.manifest("Ingress", "unifi", "external-services")["metadata"]["annotations"]
    assert unifi["nginx.ingress.kubernetes.io/backend-protocol"] == "HTTPS"
    photos = nginx_app.manifest("Ingress", "photos", "photos")["metadata"]["annotations"]
    assert photos["nginx.ingress.kubernetes.io/proxy-body-size"] == "50000m"
    assert photos["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "600"
    assert photos["nginx.ingress.kubernetes.io/proxy-send-timeout"] == "600"
    assert "nginx.ingress.kubernetes.io/backend-protocol" not in photos
    assert not [k for k in photos if k.startswith("traefik.")]


def test_traefik_https_backend_through_servers_transport(traefik_app: mockrun.Result) -> None:
    transport = traefik_app.manifest("ServersTransport", "unifi-backend", "external-services")
    assert transport["spec"]["insecureSkipVerify"] is True
    patch = traefik_app.find("kubernetes:core/v1:ServicePatch::ingress-unifi-backend-annotations")
    meta = patch.plain_inputs["metadata"]
    ingress = traefik_app.manifest("Ingress", "unifi", "external-services")
    assert meta["name"] == ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
    assert meta["annotations"] == {
        "traefik.ingress.kubernetes.io/service.serversscheme": "https",
        "traefik.ingress.kubernetes.io/service.serverstransport": (
            "external-services-unifi-backend@kubernetescrd"
        ),
    }
    # The patch waits for the Service it annotates and the transport it names.
    assert "kubernetes:core/v1:Service::external-services-unifi-service" in patch.depends_on
    assert "kubernetes:traefik.io/v1alpha1:ServersTransport::ingress-unifi-transport" in patch.depends_on
    assert not [k for k in ingress["metadata"]["annotations"] if k.startswith("nginx.")]


def test_traefik_body_size_and_timeouts(traefik_app: mockrun.Result) -> None:
    photos = traefik_app.manifest("Ingress", "photos", "photos")["metadata"]["annotations"]
    assert (
        photos["traefik.ingress.kubernetes.io/router.middlewares"] == "photos-photos-body-size@kubernetescrd"
    )
    middleware = traefik_app.manifest("Middleware", "photos-body-size", "photos")
    assert middleware["spec"]["buffering"]["maxRequestBodyBytes"] == 50000 * 2**20
    transport = traefik_app.manifest("ServersTransport", "photos-backend", "photos")
    assert transport["spec"] == {"forwardingTimeouts": {"responseHeaderTimeout": "600s"}}
    # An http backend gets no https scheme.
    patch = traefik_app.find("kubernetes:core/v1:ServicePatch::ingress-photos-backend-annotations")
    assert (
        "traefik.ingress.kubernetes.io/service.serversscheme"
        not in patch.plain_inputs["metadata"]["annotations"]
    )
    assert traefik_app.manifests("Middleware") == [middleware]  # nas has no body size: none


def test_traefik_renders_valid_objects(traefik_app: mockrun.Result) -> None:
    schemas = crd_schema_dir()
    kinds = set()
    for obj in traefik_app.manifests():
        if "." in obj["apiVersion"].split("/")[0] and not obj["apiVersion"].split("/")[0].endswith(".k8s.io"):
            validate_custom(obj, schemas)
        else:
            validate_builtin(obj)
        kinds.add(obj["kind"])
    assert {"Ingress", "ServersTransport", "Middleware", "ClusterIssuer", "EndpointSlice"} <= kinds


def test_servers_transport_schema_catches_a_misspelled_field() -> None:
    bad = {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "ServersTransport",
        "metadata": {"name": "x", "namespace": "y"},
        "spec": {"insecureSkipVerfy": True},
    }
    with pytest.raises(jsonschema.ValidationError):
        validate_custom(bad, crd_schema_dir())


def _outside_ingress(result: mockrun.Result) -> dict[str, Any]:
    parents = {r.key: r.parent for r in result.registrations}

    def inside(key: str | None) -> bool:
        while key:
            if key == COMPONENT:
                return True
            key = parents.get(key)
        return False

    def controller_monitor(r: mockrun.Registration) -> bool:
        """Objects derived (ServiceMonitor, NetworkPolicies) for the controller's own namespace."""
        ns = (r.plain_inputs.get("metadata") or {}).get("namespace")
        return ns in {"ingress-nginx", "traefik"}

    def normalized(r: mockrun.Registration) -> dict[str, Any]:
        """Allow rules name the controller's pods, which IngressTls publishes: compare the rest."""
        inputs = copy.deepcopy(r.masked_inputs)
        if r.type.endswith(":NetworkPolicy") and inputs["metadata"]["name"].startswith("allow-ingress-"):
            for rule in inputs["spec"].get("ingress", []):
                rule["from"] = "<the ingress controller's pods>"
        return inputs

    def deps(r: mockrun.Registration) -> list[str]:
        """Waiting for IngressTls's children (whichever they are) is not knowing the controller."""
        return [d for d in r.depends_on if not inside(d)]

    return {
        r.key: (r.parent, r.provider, deps(r), json.dumps(normalized(r), sort_keys=True))
        for r in result.registrations
        if not inside(r.key) and not controller_monitor(r)
    }


def test_switching_controller_changes_nothing_outside_ingress_tls(
    nginx_app: mockrun.Result, traefik_app: mockrun.Result
) -> None:
    outside = _outside_ingress(nginx_app)
    assert len(outside) > 10
    assert outside == _outside_ingress(traefik_app)
    assert nginx_app.outputs["urls"] == traefik_app.outputs["urls"]


def test_the_comparison_sees_a_change_outside() -> None:
    """The check above must fail when something outside the component differs."""
    a = mockrun.Registration("kubernetes:core/v1:Service", "s", "u", None, "p", [], {"x": 1}, True)
    b = copy.deepcopy(a)
    b.inputs = {"x": 2}
    ra = mockrun.Result("s", [a], {}, set())
    rb = mockrun.Result("s", [b], {}, set())
    assert _outside_ingress(ra) != _outside_ingress(rb)


# --- custom resources wait for the release that installs their CRDs ---------------------------


def crd_problems(result: mockrun.Result) -> list[str]:
    releases: dict[str, str] = {}
    for r in result.by_type("kubernetes:helm.sh/v3:Release"):
        releases[r.key] = r.plain_inputs["chart"]
    problems = []
    for r in result.registrations:
        if not (r.is_kubernetes_object or r.is_patch):
            continue
        group = r.plain_inputs["apiVersion"].split("/")[0] if "/" in r.plain_inputs["apiVersion"] else ""
        if group in ("", "apps", "batch", "policy", "autoscaling") or group.endswith(".k8s.io"):
            continue
        chart = CRD_CHARTS.get(group)
        if chart is None:
            problems.append(f"{r.key}: no chart known to install the CRDs of {group}")
        elif not any(releases.get(dep) == chart for dep in r.depends_on):
            problems.append(f"{r.key}: does not depend on the {chart} release ({group})")
    return problems


def test_every_custom_resource_depends_on_its_crd_release(
    run: mockrun.Result, pi_k3s: mockrun.Result
) -> None:
    assert crd_problems(run) == []
    assert crd_problems(pi_k3s) == []
    groups = {o["apiVersion"].split("/")[0] for o in run.manifests()}
    assert {"cert-manager.io", "external-secrets.io"} <= groups


def test_crd_check_catches_a_missing_dependency(pi_k3s: mockrun.Result) -> None:
    issuer = copy.deepcopy(
        pi_k3s.find("kubernetes:cert-manager.io/v1:ClusterIssuer::ingress-letsencrypt-prod")
    )
    issuer.depends_on = [d for d in issuer.depends_on if "Release" not in d]
    broken = mockrun.Result("s", [*pi_k3s.by_type("kubernetes:helm.sh/v3:Release"), issuer], {}, set())
    assert crd_problems(broken) == [
        f"{issuer.key}: does not depend on the cert-manager release (cert-manager.io)"
    ]


def test_ingresses_wait_for_the_controller(run: mockrun.Result) -> None:
    for r in run.by_type("kubernetes:networking.k8s.io/v1:Ingress"):
        assert "kubernetes:helm.sh/v3:Release::ingress-controller" in r.depends_on


# --- Cloudflare ---------------------------------------------------------------------------------


def test_wildcard_record_inputs(pi_k3s: mockrun.Result) -> None:
    record = pi_k3s.find("cloudflare:index/dnsRecord:DnsRecord::ingress-wildcard")
    plain = record.plain_inputs
    assert plain["name"] == f"*.{DOMAIN}"
    assert plain["content"] == "192.168.1.55"
    assert (plain["type"], plain["proxied"], plain["ttl"]) == ("A", False, 1)
    assert plain["zoneId"] == mockrun.stand_in("pi-cluster:cloudflareZoneId")
    assert mockrun.contains_secret(record.inputs["zoneId"])
    assert record.provider == "ingress-cloudflare"
    provider = pi_k3s.find("pulumi:providers:cloudflare::ingress-cloudflare")
    assert provider.plain_inputs["apiToken"] == mockrun.stand_in("pi-cluster:cloudflareApiToken")
    assert mockrun.contains_secret(provider.inputs["apiToken"])
    assert provider.parent == COMPONENT


def test_record_follows_the_ingress_placement() -> None:
    values = stack_values()
    placement = {**values["pi-cluster:placement"], "ingress": "pi3-worker-2"}
    result = mockrun.run(overrides={"pi-cluster:placement": placement})
    record = result.find("cloudflare:index/dnsRecord:DnsRecord::ingress-wildcard").plain_inputs
    assert record["content"] == "192.168.1.51"
    values_ = result.find("kubernetes:helm.sh/v3:Release::ingress-controller").plain_inputs["values"]
    assert values_["controller"]["nodeSelector"]["kubernetes.io/hostname"] == "pi3-worker-2"


# --- LAN devices --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "address", "port", "protocol"),
    [
        ("unifi", "192.168.1.30", 8443, "https"),
        ("nas", "192.168.1.60", 5000, "http"),
    ],
)
def test_lan_device_is_a_selectorless_service_with_an_endpointslice(
    pi_k3s: mockrun.Result, device: str, address: str, port: int, protocol: str
) -> None:
    svc = pi_k3s.manifest("Service", f"{device}-external", "external-services")
    assert "selector" not in svc["spec"]
    assert svc["spec"]["ports"] == [{"name": protocol, "port": port, "targetPort": port, "protocol": "TCP"}]
    eps = pi_k3s.manifest("EndpointSlice", f"{device}-external", "external-services")
    assert eps["apiVersion"] == "discovery.k8s.io/v1"
    assert eps["metadata"]["labels"]["kubernetes.io/service-name"] == f"{device}-external"
    assert eps["addressType"] == "IPv4"
    assert eps["endpoints"] == [{"addresses": [address], "conditions": {"ready": True}}]
    assert eps["ports"] == [{"name": protocol, "port": port, "protocol": "TCP"}]
    assert pi_k3s.manifests("Endpoints") == []
    ing = pi_k3s.manifest("Ingress", device, "external-services")
    backend = ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": f"{device}-external", "port": {"number": port}}


# --- bad input at preview -----------------------------------------------------------------------

BAD = [
    (
        "two-devices-same-host",
        {"lanDevices.1.route.hostPrefix": "nas"},
        ["pi-cluster:lanDevices", "same host nas.lab.mtgibbs.dev", "'nas'"],
    ),
    (
        "host-prefix-not-dns-label",
        {"lanDevices.0.route.hostPrefix": "NAS_box"},
        ["pi-cluster:lanDevices[0].route.hostPrefix", "'NAS_box' is not a DNS label"],
    ),
    (
        "device-address-not-ip",
        {"lanDevices.1.address": "unifi.local"},
        ["pi-cluster:lanDevices[1].address", "'unifi.local' is not an IPv4 address"],
    ),
    ("unknown-controller", {"ingress.controller": "haproxy"}, ["pi-cluster:ingress.controller", "'haproxy'"]),
    ("unknown-issuer", {"ingress.issuer": "letsencrypt"}, ["pi-cluster:ingress.issuer", "'letsencrypt'"]),
    ("bad-email", {"ingress.acmeEmail": "nobody"}, ["pi-cluster:ingress.acmeEmail", "'nobody'"]),
    (
        "lan-resolver",
        {"ingress.certManager.recursiveNameservers": ["pihole"]},
        ["pi-cluster:ingress.certManager", "'pihole' is not <IPv4>:<port>"],
    ),
    ("device-port", {"lanDevices.0.route.port": 70000}, ["pi-cluster:lanDevices[0].route.port"]),
    ("device-protocol", {"lanDevices.0.route.protocol": "ftp"}, ["pi-cluster:lanDevices[0].route.protocol"]),
    (
        "chart-unpinned",
        {"ingress.traefik.chart.version": "latest"},
        ["pi-cluster:ingress.traefik.chart.version"],
    ),
    ("ingress-node-unknown", {"placement.ingress": "pi9"}, ["pi-cluster:placement.ingress", "'pi9'"]),
]


@pytest.mark.parametrize(("edits", "fragments"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_ingress_input_is_rejected(edits: dict[str, Any], fragments: list[str]) -> None:
    raw = raw_config()
    for path, value in edits.items():
        _set(raw, path, value)
    with pytest.raises(SettingsError) as info:
        parse(raw)
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} not in:\n{info.value}"


def test_unknown_controller_stops_the_program_before_any_resource() -> None:
    with pytest.raises(SettingsError, match=r"pi-cluster:ingress.controller: .*'haproxy'"):
        mockrun.run(overrides=with_ingress(controller="haproxy"))


def test_two_routes_with_one_host_are_refused() -> None:
    routes = RouteRegistry(DOMAIN)
    routes.add(Route("photos", "photos", "photos", "svc", 80))
    with pytest.raises(RouteError, match=r"'photos' and 'immich' both use host photos.lab.mtgibbs.dev"):
        routes.add(Route("immich", "photos", "immich", "svc", 80))
    routes.add(Route("immich", "immich", "immich", "svc", 80))


def test_an_app_route_clashing_with_a_device_fails_the_run(tmp_path: Path) -> None:
    devices = copy.deepcopy(stack_values()["pi-cluster:lanDevices"])
    devices[0]["route"]["hostPrefix"] = "photos"  # the test app's host
    with pytest.raises(RouteError, match=r"both use host photos\.lab\.mtgibbs\.dev"):
        with_app(tmp_path, {"pi-cluster:lanDevices": devices})


def test_host_prefix_must_be_a_dns_label() -> None:
    with pytest.raises(RouteError, match="is not a DNS label"):
        Route("photos", "Photos!", "photos", "svc", 80)


def test_publish_freezes_the_registry() -> None:
    routes = RouteRegistry(DOMAIN)
    routes.freeze()
    with pytest.raises(RouteError, match="declared after the routes were read"):
        routes.add(Route("late", "late", "late", "svc", 80))


# --- helpers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"), [("0", 0), ("512", 512), ("8k", 8192), ("100m", 100 * 2**20), ("1G", 2**30)]
)
def test_body_size_bytes(size: str, expected: int) -> None:
    assert body_size_bytes(size) == expected


@pytest.mark.parametrize("size", ["", "1.5m", "10MB", "-1"])
def test_body_size_rejects_garbage(size: str) -> None:
    with pytest.raises(ValueError, match="body size"):
        body_size_bytes(size)


def test_nginx_verifies_https_backends_when_asked() -> None:
    raw = raw_config()
    raw["ingress"]["verifyHttpsBackends"] = True
    tls = type("T", (), {"settings": parse(raw)})()
    notes = _Nginx().route_objects(tls, Route("u", "u", "n", "s", 443, protocol="https"), None)  # type: ignore[arg-type]
    assert notes["nginx.ingress.kubernetes.io/proxy-ssl-verify"] == "on"


def test_acme_servers_are_the_two_issuers() -> None:
    assert set(ACME_SERVERS) == {"letsencrypt-prod", "letsencrypt-staging"}
