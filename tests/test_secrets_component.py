"""Secrets: ESO chart, the 1Password token Secret from the stack secret, the store, the helper."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from components.secrets import Secrets
from config.settings import parse
from tests.conftest import raw_config
from tests.ingress_runs import stack_values, with_app
from tools import mockrun

ESO = "kubernetes:helm.sh/v3:Release::secrets-eso"
STORE = "kubernetes:external-secrets.io/v1:ClusterSecretStore::secrets-store"


@pytest.fixture(scope="module")
def prefixed(tmp_path_factory: pytest.TempPathFactory) -> mockrun.Result:
    """The stack plus a templated ExternalSecret, with an item prefix on every 1Password item."""
    onepassword = {**stack_values()["pi-cluster:onepassword"], "itemPrefix": "lab-"}
    return with_app(tmp_path_factory.mktemp("prefixed"), {"pi-cluster:onepassword": onepassword})


def test_eso_chart_pinned_with_crds_resources_and_metrics(pi_k3s: mockrun.Result) -> None:
    release = pi_k3s.find(ESO).plain_inputs
    assert (release["chart"], release["version"]) == ("external-secrets", "1.2.0")
    assert release["repositoryOpts"]["repo"] == "https://charts.external-secrets.io"
    values = release["values"]
    assert values["installCRDs"] is True
    assert values["metrics"]["service"]["enabled"] is True
    for part in (values, values["webhook"], values["certController"]):
        assert set(part["resources"]) == {"requests", "limits"}


def test_store_reads_the_vault_with_the_token_secret(pi_k3s: mockrun.Result) -> None:
    store = pi_k3s.manifest("ClusterSecretStore", "onepassword")
    sdk = store["spec"]["provider"]["onepasswordSDK"]
    assert sdk["vault"] == "pi-cluster"
    ref = sdk["auth"]["serviceAccountSecretRef"]
    assert ref == {"name": "onepassword-service-account", "key": "token", "namespace": "external-secrets"}
    token = pi_k3s.manifest("Secret", ref["name"], ref["namespace"])
    assert ref["key"] in token["stringData"]
    deps = pi_k3s.find(STORE).depends_on
    assert ESO in deps
    assert "kubernetes:core/v1:Secret::secrets-onepassword-token" in deps


def test_token_secret_comes_from_the_stack_secret_and_stays_secret(pi_k3s: mockrun.Result) -> None:
    reg = pi_k3s.find("kubernetes:core/v1:Secret::secrets-onepassword-token")
    assert reg.plain_inputs["stringData"]["token"] == mockrun.stand_in("pi-cluster:onepasswordToken")
    assert mockrun.contains_secret(reg.inputs["stringData"])
    assert reg.masked_inputs["stringData"]["token"] == mockrun.MASK


def test_helper_declares_an_external_secret_with_24h_refresh(pi_k3s: mockrun.Result) -> None:
    es = pi_k3s.manifest("ExternalSecret", "cloudflare-api-token", "cert-manager")
    assert es["spec"] == {
        "refreshInterval": "24h",
        "secretStoreRef": {"kind": "ClusterSecretStore", "name": "onepassword"},
        "target": {"name": "cloudflare-api-token", "creationPolicy": "Owner"},
        "data": [{"secretKey": "api-token", "remoteRef": {"key": "cloudflare/api-token"}}],
    }
    reg = pi_k3s.find(
        "kubernetes:external-secrets.io/v1:ExternalSecret::cert-manager-cloudflare-api-token-externalsecret"
    )
    assert {ESO, STORE} <= set(reg.depends_on)


def test_refresh_defaults_to_24h_when_unset() -> None:
    raw = raw_config()
    del raw["secrets"]["refreshInterval"]
    assert parse(raw).secrets.refresh_interval == "24h"
    raw["secrets"]["refreshInterval"] = "1h"
    assert parse(raw).secrets.refresh_interval == "1h"


def test_item_prefix_and_template(prefixed: mockrun.Result) -> None:
    es = prefixed.manifest("ExternalSecret", "photos-db", "photos")
    assert es["spec"]["data"] == [
        {"secretKey": "password", "remoteRef": {"key": "lab-immich/db-password"}},
        {"secretKey": "user", "remoteRef": {"key": "lab-immich/db-user"}},
    ]
    assert es["spec"]["target"]["template"] == {
        "engineVersion": "v2",
        "data": {"url": "postgres://{{ .user }}:{{ .password }}@db:5432/photos"},
    }
    cf = prefixed.manifest("ExternalSecret", "cloudflare-api-token", "cert-manager")
    assert cf["spec"]["data"][0]["remoteRef"]["key"] == "lab-cloudflare/api-token"


@pytest.mark.parametrize("reference", ["no-field", "a/b/c", "/field", "item/"])
def test_reference_must_be_item_slash_field(reference: str) -> None:
    settings = parse(raw_config())
    holder = SimpleNamespace(_settings=settings)
    with pytest.raises(ValueError, match="is not 'item/field'"):
        Secrets.item(holder, reference)  # type: ignore[arg-type]
    assert Secrets.item(holder, "item/field") == "item/field"  # type: ignore[arg-type]


def test_no_secret_in_the_rendered_token_secret(rendered_dir: Path) -> None:
    text = (
        rendered_dir / "manifests" / "external-secrets" / "Secret-onepassword-service-account.yaml"
    ).read_text()
    assert mockrun.stand_in("pi-cluster:onepasswordToken") not in text
    assert mockrun.MASK in text
