"""Every rendered object is valid for Kubernetes 1.33 (strict), custom resources against their CRDs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.conftest import crd_schema_dir
from tools import mockrun
from tools.chart_checks import K8S_VERSION, crd_schema_path, is_builtin

# Custom resource kinds the stack may declare, and the group of each.
CUSTOM_KINDS = {
    ("external-secrets.io", "ClusterSecretStore"),
    ("external-secrets.io", "ExternalSecret"),
    ("cert-manager.io", "ClusterIssuer"),
    ("cert-manager.io", "Certificate"),
    ("monitoring.coreos.com", "ServiceMonitor"),
    ("monitoring.coreos.com", "PodMonitor"),
    ("monitoring.coreos.com", "PrometheusRule"),
    ("traefik.io", "IngressRoute"),
    ("traefik.io", "Middleware"),
    ("traefik.io", "ServersTransport"),
}


def _documents(rendered_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    return [(p, yaml.safe_load(p.read_text())) for p in sorted((rendered_dir / "manifests").rglob("*.yaml"))]


def validate_builtin(obj: dict[str, Any]) -> None:
    """Strict schema validation; a built-in kind without a schema is an error, not a warning."""
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError as err:
        raise AssertionError(f"no schema for built-in {obj['apiVersion']} {obj['kind']}") from err


def validate_custom(obj: dict[str, Any], schemas: Path) -> None:
    group = obj["apiVersion"].partition("/")[0]
    if (group, obj["kind"]) not in CUSTOM_KINDS:
        raise AssertionError(f"custom resource {obj['apiVersion']} {obj['kind']} is not on the allowlist")
    path = crd_schema_path(obj, schemas)
    if not path.is_file():
        raise AssertionError(
            f"no schema for {obj['apiVersion']} {obj['kind']} ({path.name}): make crd-schemas"
        )
    schema = json.loads(path.read_text())
    jsonschema.Draft7Validator(schema).validate(obj)


def test_every_object_is_valid(any_rendered_dir: Path) -> None:
    schemas = crd_schema_dir()
    docs = _documents(any_rendered_dir)
    assert docs
    failures = []
    for path, obj in docs:
        try:
            if is_builtin(obj["apiVersion"]):
                validate_builtin(obj)
            else:
                validate_custom(obj, schemas)
        except (AssertionError, kubernetes_validate.ValidationError, jsonschema.ValidationError) as err:
            failures.append(f"{path.name}: {str(err).splitlines()[0]}")
    assert failures == []


def test_strict_validation_catches_a_misspelled_field() -> None:
    bad = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "lables": {}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_builtin(bad)


def test_builtin_group_without_schema_fails() -> None:
    with pytest.raises(AssertionError, match="no schema for built-in"):
        validate_builtin({"apiVersion": "apps/v9", "kind": "Deployment", "metadata": {"name": "x"}})


def test_custom_kind_outside_allowlist_fails() -> None:
    with pytest.raises(AssertionError, match="not on the allowlist"):
        validate_custom({"apiVersion": "example.com/v1", "kind": "Widget"}, Path("."))


# A field of a custom resource the program renders, and the same field misspelled.
MISSPELLED = [
    (
        "ClusterSecretStore",
        ["spec", "provider", "onepasswordSDK", "auth", "serviceAccountSecretRef"],
        "serviceAcountSecretRef",
    ),
    ("ClusterIssuer", ["spec", "acme", "privateKeySecretRef"], "privateKeySecretref"),
    ("ServiceMonitor", ["spec", "endpoints", 0, "interval"], "intreval"),
]


@pytest.mark.parametrize(("kind", "path", "typo"), MISSPELLED, ids=[m[0] for m in MISSPELLED])
def test_custom_resource_schema_catches_a_misspelled_field(
    pi_k3s: mockrun.Result, kind: str, path: list[Any], typo: str
) -> None:
    schemas = crd_schema_dir()
    obj = copy.deepcopy(pi_k3s.manifests(kind)[0])
    validate_custom(obj, schemas)
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    parent[typo] = parent.pop(path[-1])
    with pytest.raises(jsonschema.ValidationError, match=f"'{typo}' was unexpected"):
        validate_custom(obj, schemas)


def test_custom_resource_with_no_generated_schema_fails(tmp_path: Path) -> None:
    obj = {"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware", "metadata": {"name": "x"}}
    with pytest.raises(AssertionError, match=r"no schema for traefik\.io/v1alpha1 Middleware"):
        validate_custom(obj, tmp_path)
