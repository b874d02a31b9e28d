"""Environments: the same program for the house cluster and a one-node test cluster."""

from __future__ import annotations

import re

import pytest

from config.settings import SettingsError
from tests.conftest import ROOT
from tools import mockrun, stacks


def test_dev_stack_is_one_node_that_is_server(dev: mockrun.Result) -> None:
    assert dev.outputs["nodes"] == {"pi-dev": {"address": "192.168.1.57", "role": "server", "model": "pi5"}}
    assert dev.outputs["dnsServer"] == "192.168.1.57"


def test_stacks_differ_only_by_settings(pi_k3s: mockrun.Result, dev: mockrun.Result) -> None:
    """The same components are built for both stacks; only optional sections add or remove one."""
    house = {r.type for r in pi_k3s.registrations if not r.custom}
    test = {r.type for r in dev.registrations if not r.custom}
    assert house - test == {"pi-cluster:media:Media", "pi-cluster:backups:Backups"}
    assert test <= house


def test_no_stack_name_in_the_program() -> None:
    """Every difference is a setting: no component or the composition branches on the stack."""
    sources = [
        ROOT / "__main__.py",
        *sorted((ROOT / "components").glob("*.py")),
        *sorted((ROOT / "config").glob("*.py")),
    ]
    offenders = [
        str(p.relative_to(ROOT))
        for p in sources
        if "get_stack(" in p.read_text() or re.search(r"[\"']pi-k3s[\"']|[\"']dev[\"']", p.read_text())
    ]
    assert offenders == []


def test_dev_uses_staging_and_its_own_domain(dev: mockrun.Result) -> None:
    ingresses = dev.manifests("Ingress")
    assert len(ingresses) >= 4
    for ing in ingresses:
        assert ing["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt-staging"
        for rule in ing["spec"]["rules"]:
            assert rule["host"].endswith(".dev.lab.mtgibbs.dev"), rule["host"]
    assert all(
        url.startswith("https://") and url.endswith(".dev.lab.mtgibbs.dev")
        for url in dev.outputs["urls"].values()
    )
    (record,) = [
        r.plain_inputs for r in dev.registrations if r.type == "cloudflare:index/dnsRecord:DnsRecord"
    ]
    assert (record["name"], record["content"], record["type"]) == (
        "*.dev.lab.mtgibbs.dev",
        "192.168.1.57",
        "A",
    )


def test_dev_has_no_media_or_backups(pi_k3s: mockrun.Result, dev: mockrun.Result) -> None:
    apps = {"jellyfin", "immich", "backup-jobs"}
    assert apps <= {n["metadata"]["name"] for n in pi_k3s.manifests("Namespace")}
    assert apps.isdisjoint(n["metadata"]["name"] for n in dev.manifests("Namespace"))
    assert {"jellyfin", "immich"}.isdisjoint(dev.outputs["urls"])


def external_identifiers(result: mockrun.Result) -> dict[str, set[str]]:
    """What two stacks sharing one Cloudflare account and one 1Password vault could collide on."""
    return {
        "cloudflare record": {
            r.plain_inputs["name"]
            for r in result.registrations
            if r.type.startswith("cloudflare:index/dnsRecord")
        },
        "1Password item": {
            d["remoteRef"]["key"].split("/")[0]
            for es in result.manifests("ExternalSecret")
            for d in es["spec"].get("data", [])
        },
        "certificate host": {
            h for ing in result.manifests("Ingress") for t in ing["spec"]["tls"] for h in t["hosts"]
        },
    }


def test_stacks_share_no_external_identifier(pi_k3s: mockrun.Result, dev: mockrun.Result) -> None:
    house, test = external_identifiers(pi_k3s), external_identifiers(dev)
    for kind in house:
        assert house[kind] and test[kind], kind
        assert house[kind].isdisjoint(test[kind]), f"{kind}: {sorted(house[kind] & test[kind])}"
    assert all(item.startswith("dev-") for item in test["1Password item"])


def test_the_identifier_check_sees_a_shared_item(pi_k3s: mockrun.Result) -> None:
    """Without the dev prefix both stacks would read the same 1Password items."""
    values, _ = mockrun.stack_config("dev")
    same_items = mockrun.run(
        "dev", overrides={"pi-cluster:onepassword": {**values["pi-cluster:onepassword"], "itemPrefix": ""}}
    )
    shared = (
        external_identifiers(pi_k3s)["1Password item"] & external_identifiers(same_items)["1Password item"]
    )
    assert "pihole" in shared


def test_generated_24_node_stack_renders() -> None:
    result = mockrun.run("pi-k3s", config=stacks.scaled_config(24))
    assert len(result.outputs["nodes"]) == 24
    assert sum(1 for n in result.outputs["nodes"].values() if n["role"] == "agent") == 23


def test_fewer_nodes_than_placements_names_each_workload() -> None:
    config = stacks.scaled_config(3)
    config["pi-cluster:nodes"] = [
        {
            "name": "pi-solo",
            "address": "192.168.1.70",
            "role": "server",
            "hardware": {"model": "pi5", "cores": 4, "memory": "8Gi"},
        }
    ]
    with pytest.raises(SettingsError) as info:
        mockrun.run("pi-k3s", config=config)
    message = str(info.value)
    for workload, node in (("pihole", "pi-k3s"), ("unbound", "pi3-worker-1")):
        assert f"pi-cluster:placement.{workload}: workload {workload!r} is placed on node {node!r}" in message
    assert "Traceback" not in message


def test_scaled_config_refuses_to_shrink() -> None:
    with pytest.raises(ValueError, match="already has 3 nodes"):
        stacks.scaled_config(2)
