"""Environments: the same program for the house cluster and a one-node test cluster."""

from __future__ import annotations

import pytest

from config.settings import SettingsError
from tools import mockrun, stacks


def test_dev_stack_is_one_node_that_is_server(dev: mockrun.Result) -> None:
    assert dev.outputs["nodes"] == {"pi-dev": {"address": "192.168.1.57", "role": "server", "model": "pi5"}}
    assert dev.outputs["dnsServer"] == "192.168.1.57"


def test_stacks_differ_only_by_settings(pi_k3s: mockrun.Result, dev: mockrun.Result) -> None:
    """The same components are built for both stacks; nothing branches on the stack name."""
    components = {r.type for r in pi_k3s.registrations if not r.custom}
    assert components <= {r.type for r in dev.registrations if not r.custom} | {
        "pi-cluster:media:Media",
        "pi-cluster:backups:Backups",
    }


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
