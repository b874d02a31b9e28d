"""Defects the real engine found (`make e2e`), each as a rule that holds without the engine.

The e2e run is the only place the Pulumi engine, the Kubernetes provider and an API server see
the program; every failure it showed is written down here as a test on what the program
registers, so the mocks catch it next time.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tools import mockrun
from tools.charts import RELEASE_TYPE as RELEASE


def _nulls(value: Any, path: str = "") -> list[str]:
    if value is None:
        return [path or "<root>"]
    if isinstance(value, dict):
        return [n for k, v in value.items() for n in _nulls(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [n for i, v in enumerate(value) for n in _nulls(v, f"{path}[{i}]")]
    return []


def release_nulls(result: mockrun.Result) -> dict[str, list[str]]:
    """Per Helm release, every null in its values and value files."""
    found = {}
    for reg in result.by_type(RELEASE):
        inputs = reg.plain_inputs
        nulls = _nulls(inputs.get("values") or {})
        for i, asset in enumerate(inputs.get("valueYamlFiles") or ()):
            nulls += [f"valueYamlFiles[{i}]:{n}" for n in _nulls(yaml.safe_load(asset.get("text", "")) or {})]
        if nulls:
            found[reg.name] = nulls
    return found


@pytest.fixture(scope="module")
def traefik(stack_values: dict[str, Any]) -> mockrun.Result:
    ingress = {**stack_values["pi-cluster:ingress"], "controller": "traefik"}
    return mockrun.run(overrides={"pi-cluster:ingress": ingress})


def test_no_helm_value_relies_on_a_null(any_stack: mockrun.Result, traefik: mockrun.Result) -> None:
    """e2e: ingress-nginx took hostPort 80 and Pi-hole stayed Pending on pi-k3s ("didn't have
    free ports"). The program deleted the chart's http containerPort with `http: null` in a
    value file; the Kubernetes provider dropped the null before Helm saw it (plugin 4.25.0:
    inputs round-trip with SkipNulls between Check and Create, pulumi/pulumi-kubernetes#2997,
    fixed in 4.30.0), and the Python SDK drops None in `values` in every version. So no release
    may need a null to reach Helm."""
    for result in (any_stack, traefik):
        assert release_nulls(result) == {}, result.stack


def test_the_null_rule_finds_a_null_in_a_value_file() -> None:
    """The rule above on a release like the one the engine showed failing."""
    result = mockrun.Result("x", [], {}, set())
    result.registrations.append(
        mockrun.Registration(
            type=RELEASE,
            name="ingress-controller",
            urn="",
            parent=None,
            provider=None,
            depends_on=[],
            inputs={
                "values": {"a": 1},
                "valueYamlFiles": [{"text": "controller:\n  containerPort:\n    http: null\n"}],
            },
            custom=True,
        )
    )
    assert release_nulls(result) == {
        "ingress-controller": ["valueYamlFiles[0]:controller.containerPort.http"]
    }
    assert json.dumps(release_nulls(mockrun.Result("y", [], {}, set()))) == "{}"
    # A null in the inline values is reported too (with its path), and falsy values are not nulls.
    reg = result.registrations[0]
    reg.inputs = {"values": {"a": 0, "b": False, "c": "", "d": [{"e": None}]}}
    assert release_nulls(result) == {"ingress-controller": ["d[0].e"]}
    reg.inputs = {"values": {"a": 0, "b": False, "c": "", "d": []}, "valueYamlFiles": [{"text": "x: ''\n"}]}
    assert json.dumps(release_nulls(result)) == "{}"
