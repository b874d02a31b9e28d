"""The settings model refuses bad input with a message naming the key and the bad value."""

from __future__ import annotations

from typing import Any

import pytest

from config.settings import SettingsError, parse
from tests.conftest import raw_config
from tools import mockrun


def test_stack_file_is_valid() -> None:
    s = parse(raw_config())
    assert s.server.name == "pi-k3s"
    assert [a.name for a in s.agents] == ["pi3-worker-1", "pi3-worker-2"]
    assert s.k3s.version == "v1.33.6+k3s1"
    assert s.domain == "lab.mtgibbs.dev"


def _set(raw: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path such as ``nodes.1.address``; value None deletes the key."""
    parts = path.split(".")
    target: Any = raw
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = parts[-1]
    if value is None:
        del target[int(last) if last.isdigit() else last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value


CASES = [
    # (id, edits, expected fragments of the message)
    ("duplicate-node-name", {"nodes.1.name": "pi-k3s"}, ["duplicate node name 'pi-k3s'"]),
    ("duplicate-address", {"nodes.2.address": "192.168.1.53"}, ["duplicate node address '192.168.1.53'"]),
    ("no-server", {"nodes.0.role": "agent"}, ["exactly one node must have role 'server', found 0"]),
    ("two-servers", {"nodes.1.role": "server"}, ["found 2 (pi-k3s, pi3-worker-1)"]),
    (
        "address-outside-lan",
        {"nodes.2.address": "10.0.0.5"},
        ["nodes[2].address", "'10.0.0.5'", "outside lanCidr"],
    ),
    (
        "address-not-ip",
        {"nodes.1.address": "192.168.1.300"},
        ["pi-cluster:nodes[1].address", "'192.168.1.300' is not an IPv4 address"],
    ),
    ("malformed-domain", {"domain": "Lab_MTGibbs..dev"}, ["pi-cluster:domain", "'Lab_MTGibbs..dev'"]),
    ("domain-no-tld", {"domain": "localhost"}, ["pi-cluster:domain", "'localhost'"]),
    (
        "placement-unknown-node",
        {"placement.unbound": "pi4-worker-9"},
        ["pi-cluster:placement.unbound", "'pi4-worker-9'"],
    ),
    ("k3s-latest", {"k3s.version": "latest"}, ["pi-cluster:k3s.version", "'latest' is a floating version"]),
    ("k3s-empty", {"k3s.version": ""}, ["pi-cluster:k3s.version", "must not be empty"]),
    ("k3s-malformed", {"k3s.version": "1.33"}, ["pi-cluster:k3s.version", "'1.33' is not a K3s release"]),
    ("chart-latest", {"secrets.chart.version": "latest"}, ["pi-cluster:secrets.chart.version", "'latest'"]),
    ("misspelled-key", {"nodes.0.adress": "192.168.1.55"}, ["pi-cluster:nodes[0].adress", "unknown key"]),
    ("misspelled-top-key", {"timezon": "UTC"}, ["pi-cluster:timezon", "unknown key"]),
    (
        "memory-no-unit",
        {"nodes.1.hardware.memory": "1024"},
        ["pi-cluster:nodes[1].hardware.memory", "'1024'", "unit"],
    ),
    (
        "negative-cores",
        {"nodes.0.hardware.cores": -4},
        ["pi-cluster:nodes[0].hardware.cores", "greater than 0"],
    ),
    ("unknown-role", {"nodes.0.role": "master"}, ["pi-cluster:nodes[0].role", "'master'"]),
    (
        "bad-label-key",
        {"nodes.0.labels": {"-bad/key-": "x"}},
        ["'-bad/key-' is not a valid Kubernetes label key"],
    ),
    (
        "bad-label-value",
        {"nodes.0.labels": {"tier": "has space"}},
        ["'has space' is not a valid Kubernetes label value"],
    ),
    (
        "bad-node-name",
        {"nodes.0.name": "Pi_K3s"},
        ["pi-cluster:nodes[0].name", "'Pi_K3s' is not a DNS label"],
    ),
    ("bad-lan-cidr", {"lanCidr": "192.168.1.5/24"}, ["pi-cluster:lanCidr", "'192.168.1.5/24'"]),
    (
        "device-outside-lan",
        {"lanDevices.0.address": "172.16.0.9"},
        ["lanDevices[0].address", "'172.16.0.9'", "outside lanCidr"],
    ),
    ("missing-domain", {"domain": None}, ["pi-cluster:domain: required key is missing"]),
    ("no-nodes", {"nodes": []}, ["pi-cluster:nodes"]),
    (
        "memory-request-above-limit",
        {"secrets.resources.memoryRequest": "1Gi"},
        ["pi-cluster:secrets.resources", "memoryRequest 1Gi is above memoryLimit 128Mi"],
    ),
    ("refresh-bad", {"secrets.refreshInterval": "daily"}, ["pi-cluster:secrets.refreshInterval", "'daily'"]),
    (
        "cluster-cidr-overlaps-lan",
        {"k3s.clusterCidr": "192.168.0.0/16"},
        ["pi-cluster:k3s", "overlaps lanCidr"],
    ),
    ("bad-vault", {"onepassword.vault": ""}, ["pi-cluster:onepassword.vault"]),
]


@pytest.mark.parametrize(("edits", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_rejected_with_key_and_value(edits: dict[str, Any], fragments: list[str]) -> None:
    raw = raw_config()
    for path, value in edits.items():
        _set(raw, path, value)
    with pytest.raises(SettingsError) as info:
        parse(raw)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"


def test_every_problem_is_reported_at_once() -> None:
    raw = raw_config()
    _set(raw, "nodes.1.address", "192.168.1.300")
    _set(raw, "domain", "not a domain")
    with pytest.raises(SettingsError) as info:
        parse(raw)
    message = str(info.value)
    assert "nodes[1].address" in message and "pi-cluster:domain" in message


def test_plain_text_secret_is_refused_before_any_resource() -> None:
    values, _ = mockrun.stack_config("pi-k3s")
    with pytest.raises(SettingsError, match=r"pi-cluster:sshPrivateKey: stored in plain text"):
        mockrun.run(config={**values, "pi-cluster:sshPrivateKey": "-----BEGIN KEY"}, secrets={})


def test_bad_config_registers_nothing() -> None:
    """The whole program refuses bad input before registering a single resource."""
    from pulumi.runtime import mocks as pmocks

    seen: list[str] = []
    original = pmocks.MockMonitor.RegisterResource

    def spy(self: Any, request: Any) -> Any:
        seen.append(request.type)
        return original(self, request)

    placement = {**mockrun.stack_config("pi-k3s")[0]["pi-cluster:placement"], "pihole": "nowhere"}
    pmocks.MockMonitor.RegisterResource = spy  # type: ignore[method-assign]
    try:
        with pytest.raises(SettingsError, match=r"pi-cluster:placement.pihole"):
            mockrun.run(overrides={"pi-cluster:placement": placement})
    finally:
        pmocks.MockMonitor.RegisterResource = original  # type: ignore[method-assign]
    assert [t for t in seen if t != "pulumi:pulumi:Stack"] == []
