"""Highly available DNS (issue 10): Pi-holes from one configuration, Unbound spread over nodes."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from components.capacity import CapacityError
from config.settings import SettingsError
from tools import mockrun

NS = "pihole"
GOLDEN = Path(__file__).parent / "fixtures" / "dns-one-instance.json"
PRIMARY = {"node": "pi-k3s", "address": "192.168.1.55"}
SECONDARY = {"node": "pi3-worker-2", "address": "192.168.1.51"}


def _dns(stack_values: dict[str, Any], **changes: Any) -> dict[str, Any]:
    dns = copy.deepcopy(stack_values["pi-cluster:dns"])
    dns.update(changes)
    return dns


def _one_instance(stack_values: dict[str, Any], instances: list[dict[str, str]]) -> dict[str, Any]:
    return {"pi-cluster:dns": _dns(stack_values, instances=instances)}


@pytest.fixture(scope="module")
def two() -> mockrun.Result:
    dns = _dns(mockrun.stack_config("pi-k3s")[0], instances=[PRIMARY, SECONDARY])
    return mockrun.run(overrides={"pi-cluster:dns": dns})


@pytest.fixture(scope="module")
def one() -> mockrun.Result:
    return mockrun.run(overrides=_one_instance(mockrun.stack_config("pi-k3s")[0], []))


def test_one_instance_has_one_pinned_unbound_and_no_pdb(one: mockrun.Result) -> None:
    assert not [p for p in one.manifests("PodDisruptionBudget") if p["metadata"]["name"] == "unbound"]
    d = one.manifest("Deployment", "unbound", NS)
    assert d["spec"]["replicas"] == 1
    assert d["spec"]["template"]["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "pi3-worker-1"}


def _owned(result: mockrun.Result) -> dict[str, Any]:
    owned = {"pi-cluster:dns:DnsStack::dns"}
    grown = True
    while grown:
        grown = False
        for g in result.registrations:
            if g.parent in owned and g.key not in owned:
                owned.add(g.key)
                grown = True
    regs = {
        g.key: {
            "parent": g.parent,
            "provider": g.provider,
            "depends_on": sorted(g.depends_on),
            "inputs": g.inputs,
            "protect": g.protect,
        }
        for g in result.registrations
        if g.key in owned
    }
    return json.loads(json.dumps(regs, sort_keys=True, default=str))


def test_one_instance_renders_exactly_as_before(stack_values: dict[str, Any]) -> None:
    """Golden: main's DNS registrations before HA, for the default and the explicit one instance."""
    golden = json.loads(GOLDEN.read_text())
    default = mockrun.run(overrides=_one_instance(stack_values, []))
    assert _owned(default) == golden
    explicit = mockrun.run(overrides=_one_instance(stack_values, [PRIMARY]))
    assert _owned(explicit) == golden


def test_golden_comparison_sees_a_change(two: mockrun.Result) -> None:
    assert _owned(two) != json.loads(GOLDEN.read_text())


def test_two_pihole_deployments_on_different_nodes(two: mockrun.Result) -> None:
    pods = {}
    for name, inst in (("pihole", PRIMARY), ("pihole-2", SECONDARY)):
        spec = two.manifest("Deployment", name, NS)["spec"]["template"]["spec"]
        assert spec["hostNetwork"] is True
        assert spec["nodeSelector"] == {"kubernetes.io/hostname": inst["node"]}
        pods[name] = spec
        exporter = two.manifest("Deployment", f"{name}-exporter", NS)["spec"]["template"]["spec"]
        env = {e["name"]: e.get("value") for e in exporter["containers"][0]["env"]}
        assert env["PIHOLE_HOSTNAME"] == inst["address"]
    assert pods["pihole"]["nodeSelector"] != pods["pihole-2"]["nodeSelector"]
    assert two.manifest("PersistentVolumeClaim", "pihole-2-etc", NS)


def _config_hash(result: mockrun.Result, name: str, inst: dict[str, str]) -> str:
    """Hash of everything that configures one Pi-hole, with its node, address and names blanked."""
    spec = copy.deepcopy(result.manifest("Deployment", name, NS)["spec"]["template"])
    text = json.dumps(spec, sort_keys=True)
    for value in (
        f"{name}-etc",
        f'"{name}.',  # FTLCONF_webserver_domain: the instance's own host
        f'"{inst["node"]}"',
        f"node's address {inst['address']};",
    ):
        text = text.replace(value, "<x>")
    text = text.replace(f'"app.kubernetes.io/name": "{name}"', "<x>")
    return hashlib.sha256(text.encode()).hexdigest()


def test_identical_configuration_apart_from_node_address_and_names(two: mockrun.Result) -> None:
    assert _config_hash(two, "pihole", PRIMARY) == _config_hash(two, "pihole-2", SECONDARY)
    jobs = [j for j in two.manifests("Job") if j["metadata"]["namespace"] == NS]
    assert sorted(j["metadata"]["name"].rsplit("-", 1)[0] for j in jobs) == ["pihole-2-lists", "pihole-lists"]
    hashes = {j["metadata"]["annotations"]["pi-cluster/lists-sha256"] for j in jobs}
    assert len(hashes) == 1
    urls = {j["metadata"]["name"]: j["spec"]["template"]["spec"]["containers"][0]["env"] for j in jobs}
    targets = sorted(e["value"] for env in urls.values() for e in env if e["name"] == "PIHOLE_URL")
    assert targets == ["http://192.168.1.51", "http://192.168.1.55"]


def test_config_hash_sees_a_difference(two: mockrun.Result) -> None:
    assert _config_hash(two, "pihole", PRIMARY) != _config_hash(two, "pihole-exporter", PRIMARY)


def test_unbound_spread_with_pdb(two: mockrun.Result) -> None:
    d = two.manifest("Deployment", "unbound", NS)
    assert d["spec"]["replicas"] == 2
    spec = d["spec"]["template"]["spec"]
    assert "nodeSelector" not in spec
    term = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == d["spec"]["selector"]["matchLabels"]
    pdb = two.manifest("PodDisruptionBudget", "unbound", NS)
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == d["spec"]["selector"]


def test_routes_monitors_and_scrape_targets_per_instance(two: mockrun.Result) -> None:
    assert {"pihole", "pihole-2"} <= set(two.outputs["urls"])
    monitors = {m["metadata"]["name"] for m in two.manifests("ServiceMonitor")}
    assert {"pihole-exporter", "pihole-2-exporter"} <= monitors
    assert two.outputs["dnsServer"] == PRIMARY["address"]


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        (
            [PRIMARY, {"node": "pi-k3s", "address": "192.168.1.55"}],
            "dns.instances[1].node: 'pi-k3s' already runs",
        ),
        (
            [PRIMARY, {"node": "pi3-worker-2", "address": "192.168.1.55"}],
            "dns.instances[1].address: 192.168.1.55 is already",
        ),
        ([PRIMARY, {"node": "pi3-worker-2", "address": "10.0.0.5"}], "10.0.0.5 is not on the LAN"),
        (
            [PRIMARY, {"node": "pi3-worker-2", "address": "192.168.1.53"}],
            "192.168.1.53 is not the address of node 'pi3-worker-2'",
        ),
        ([SECONDARY, PRIMARY], "dns.instances[0].node: 'pi3-worker-2' is not placement.pihole"),
        (
            [PRIMARY, {"node": "nope", "address": "192.168.1.51"}],
            "dns.instances[1].node: 'nope' is not in nodes",
        ),
    ],
)
def test_bad_instances_rejected_at_preview(
    stack_values: dict[str, Any], instances: list[dict[str, str]], message: str
) -> None:
    with pytest.raises(SettingsError) as err:
        mockrun.run(overrides={"pi-cluster:dns": _dns(stack_values, instances=instances)})
    assert message in str(err.value)


def test_secondary_that_does_not_fit_is_rejected(stack_values: dict[str, Any]) -> None:
    dns = _dns(stack_values, instances=[PRIMARY, SECONDARY])
    dns["pihole"]["resources"] = {"cpuRequest": "100m", "memoryRequest": "800Mi", "memoryLimit": "800Mi"}
    with pytest.raises(CapacityError) as err:
        mockrun.run(overrides={"pi-cluster:dns": dns})
    text = str(err.value)
    assert "node pi3-worker-2" in text and "704Mi allocatable" in text and "pihole/pihole-2 800Mi" in text


GUIDE = Path(__file__).parent.parent / "docs" / "operations.md"


def _guide_unprotect_urns() -> list[str]:
    section = GUIDE.read_text().split("## Upgrade pi-cluster itself", 1)[1].split("\n## ", 1)[0]
    return [line.split("'")[1] for line in section.splitlines() if line.startswith("pulumi state unprotect ")]


def _dropped_claim_problems(urns: list[str], result: mockrun.Result) -> list[str]:
    """Each URN must be the one the program gave the dropped dnsmasq claim: the URN of the same
    instance's etc claim with etc in place of dnsmasq, and no such claim may be registered now."""
    have = {r.urn for r in result.registrations}
    out = []
    for urn in urns:
        sibling = urn.replace("-dnsmasq-pvc", "-etc-pvc")
        if sibling == urn or sibling not in have:
            out.append(f"{urn}: not the URN of a dropped dnsmasq claim (no {sibling})")
        if urn in have:
            out.append(f"{urn}: still registered, nothing to unprotect")
    return out


def test_the_upgrade_guide_unprotects_the_dropped_dnsmasq_claims_by_real_urns(two: mockrun.Result) -> None:
    urns = _guide_unprotect_urns()
    assert [u.rsplit("::", 1)[1] for u in urns] == ["dns-pihole-dnsmasq-pvc", "dns-pihole-2-dnsmasq-pvc"]
    assert _dropped_claim_problems(urns, two) == []
    assert not [r.name for r in two.registrations if "dnsmasq" in r.name]
    wrong_stack = urns[0].replace("urn:pulumi:pi-k3s::", "urn:pulumi:dev::")
    wrong_type = urns[0].replace("DnsStack$", "Dns$")
    assert len(_dropped_claim_problems([wrong_stack, wrong_type], two)) == 2
