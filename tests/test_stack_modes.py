"""Settings for a running cluster, an air gap and throwaway stacks (docs/operations.md): each
validated at preview with the key and the bad value named, each with what it changes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pulumi_kubernetes
import pytest
import yaml

from config.settings import SettingsError, parse
from policy.policies import MANDATORY_POLICIES
from tests.conftest import ROOT, raw_config
from tools import helm, mockrun

NS = "pi-cluster"
REASON = "a throwaway test stack, destroyed after every run"


def _ingress(values: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {f"{NS}:ingress": {**values[f"{NS}:ingress"], **changes}}


# -- existingCluster --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def existing() -> mockrun.Result:
    """pi-k3s on a running cluster: its kubeconfig a secret, no SSH key at all."""
    return mockrun.run(
        overrides={f"{NS}:existingCluster": True},
        secrets={f"{NS}:sshPrivateKey": None, f"{NS}:kubeconfig": mockrun.K3S_KUBECONFIG},
    )


def test_an_existing_cluster_is_not_bootstrapped(existing: mockrun.Result, pi_k3s: mockrun.Result) -> None:
    assert [r for r in existing.registrations if r.type.startswith("command:")] == []
    assert existing.invokes == []  # no host-identity.sh over SSH either
    component = existing.get("pi-cluster:cluster:ExistingCluster", "k3s")
    provider = existing.get("pulumi:providers:kubernetes", "k3s-provider")
    assert provider.parent == component.key
    before = pi_k3s.get("pulumi:providers:kubernetes", "k3s-provider").plain_inputs
    assert provider.plain_inputs["clusterIdentifier"] == before["clusterIdentifier"]
    assert provider.plain_inputs["enableServerSideApply"] == before["enableServerSideApply"]
    # The provider and the output are the secret itself.
    assert mockrun.contains_secret(provider.inputs["kubeconfig"])
    assert provider.plain_inputs["kubeconfig"] == mockrun.K3S_KUBECONFIG
    assert "kubeconfig" in existing.secret_outputs
    assert existing.outputs["kubeconfig"] == mockrun.K3S_KUBECONFIG
    # Everything else is the same stack, on the same provider.
    kinds = {r.key for r in pi_k3s.registrations if r.type.startswith("kubernetes:")}
    assert kinds == {r.key for r in existing.registrations if r.type.startswith("kubernetes:")}
    assert {r.provider for r in existing.registrations if r.type.startswith("kubernetes:")} == {
        "k3s-provider"
    }


def test_an_existing_cluster_needs_no_host_keys() -> None:
    raw = raw_config()
    for node in raw["nodes"]:
        node.pop("skipHostKeyCheck")
    with pytest.raises(SettingsError, match=r"nodes\[0\]\.hostKey: required"):
        parse(raw)
    assert parse({**raw, "existingCluster": True}).existing_cluster is True


def test_an_existing_cluster_needs_its_kubeconfig_and_bootstrap_its_key(stack_values: dict[str, Any]) -> None:
    with pytest.raises(SettingsError, match=r"pi-cluster:kubeconfig: required secret is missing") as info:
        mockrun.run(
            overrides={f"{NS}:existingCluster": True},
            secrets={f"{NS}:kubeconfig": None, f"{NS}:sshPrivateKey": None},
        )
    assert "sshPrivateKey" not in str(info.value)
    with pytest.raises(SettingsError, match=r"pi-cluster:sshPrivateKey: required secret is missing") as info:
        mockrun.run(secrets={f"{NS}:sshPrivateKey": None, f"{NS}:kubeconfig": None})
    assert "kubeconfig" not in str(info.value)


@pytest.mark.parametrize(
    ("kubeconfig", "problem"),
    [
        ("not: [a kubeconfig", "is not YAML"),
        ("apiVersion: v1\nkind: Config\nclusters: []\n", "has no clusters"),
        (
            mockrun.K3S_KUBECONFIG.replace("current-context: default", "current-context: other"),
            "has no current-context",
        ),
        (
            mockrun.K3S_KUBECONFIG.replace("https://127.0.0.1:6443", "http://127.0.0.1:6443"),
            "cluster 'default' has no https server",
        ),
    ],
)
def test_a_bad_kubeconfig_is_refused_without_showing_it(kubeconfig: str, problem: str) -> None:
    with pytest.raises(SettingsError) as info:
        mockrun.run(overrides={f"{NS}:existingCluster": True}, secrets={f"{NS}:kubeconfig": kubeconfig})
    message = str(info.value)
    assert f"pi-cluster:kubeconfig: the secret (its value not shown) {problem}" in message
    assert "127.0.0.1:6443" not in message and "c3RhbmQtaW4" not in message


def test_existing_cluster_is_a_boolean() -> None:
    with pytest.raises(SettingsError, match=r"pi-cluster:existingCluster: .*\(got 'maybe'\)"):
        parse({**raw_config(), "existingCluster": "maybe"})


# -- chartMirror --------------------------------------------------------------------------------


def _mirror(folder: Path, settings: Any, tamper: str = "", drop: str = "") -> Path:
    """A Helm repository on disk with a package per chart the stack installs (index.yaml as
    `helm repo index` writes it: entries, version, digest of the package, its file name)."""
    entries: dict[str, list[dict[str, Any]]] = {}
    for chart in settings.charts().values():
        if chart.chart == drop:
            continue
        package = folder / f"{chart.chart}-{chart.version}.tgz"
        package.write_bytes(f"package of {chart.chart}".encode())
        digest = hashlib.sha256(package.read_bytes()).hexdigest()
        entries[chart.chart] = [
            {"name": chart.chart, "version": chart.version, "digest": digest, "urls": [package.name]}
        ]
        if chart.chart == tamper:
            package.write_bytes(b"another package")
    (folder / "index.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "entries": entries}))
    return folder


def test_every_release_installs_its_package_from_the_mirror(tmp_path: Path, settings: Any) -> None:
    mirror = _mirror(tmp_path, settings)
    run = mockrun.run(overrides={f"{NS}:chartMirror": str(mirror)})
    releases = [r.plain_inputs for r in run.by_type("kubernetes:helm.sh/v3:Release")]
    want = {(str(mirror / f"{c.chart}-{c.version}.tgz"), c.version) for c in settings.charts().values()}
    assert {(r["chart"], r["version"]) for r in releases} == want and len(want) == 5
    assert not any("repositoryOpts" in r for r in releases)
    # The same lookup serves the offline tools (tools/helm.py, CHART_MIRROR).
    chart = settings.secrets.chart
    assert (
        helm._from_mirror(mirror, chart.chart, chart.version)
        == mirror / f"external-secrets-{chart.version}.tgz"
    )


def test_a_chart_missing_from_the_mirror_is_refused(tmp_path: Path, settings: Any) -> None:
    mirror = _mirror(tmp_path, settings, drop="immich")
    with pytest.raises(SettingsError) as info:
        parse({**raw_config(), "chartMirror": str(mirror)})
    message = str(info.value)
    assert f"pi-cluster:chartMirror: {str(mirror)!r}: chart immich 0.10.3 is not in the mirror" in message
    assert "(chart of media.immich.chart)" in message


def test_a_package_that_is_not_the_indexed_one_is_refused(tmp_path: Path, settings: Any) -> None:
    mirror = _mirror(tmp_path, settings, tamper="cert-manager")
    with pytest.raises(SettingsError) as info:
        parse({**raw_config(), "chartMirror": str(mirror)})
    message = str(info.value)
    assert "pi-cluster:chartMirror" in message and "chart cert-manager v1.21.1" in message
    assert "does not match its digest" in message and "(chart of ingress.certManager.chart)" in message
    with pytest.raises(helm.HelmError, match="does not match its digest"):
        helm._from_mirror(mirror, "cert-manager", "v1.21.1")


def test_a_pulled_chart_is_the_exact_version_not_another_in_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHART_MIRROR", raising=False)
    cache = tmp_path / "cache"
    cache.mkdir()
    for stale in ("cert-manager-v1.20.0.tgz", "cert-manager-approver-policy-v0.1.0.tgz"):
        (cache / stale).write_bytes(b"another chart")
    pulls: list[list[str]] = []

    def pull(argv: list[str], **_: Any) -> str:  # helm pull writes <name>-<version>.tgz
        pulls.append(argv)
        if "--version" in argv and argv[argv.index("--version") + 1] == "v1.21.1":
            (cache / "cert-manager-v1.21.1.tgz").write_bytes(b"the pinned chart")
        return ""

    monkeypatch.setattr(helm, "run", pull)
    monkeypatch.setattr(helm, "binary", lambda name="helm": Path("/usr/bin/helm"))
    got = helm.package("cert-manager", "v1.21.1", "https://charts.jetstack.io", cache)
    assert got == cache / "cert-manager-v1.21.1.tgz" and got.read_bytes() == b"the pinned chart"
    assert helm.package("cert-manager", "v1.21.1", "https://charts.jetstack.io", cache) == got
    assert len(pulls) == 1  # the second call found the exact file
    with pytest.raises(helm.HelmError, match=r"left no cert-manager-v1\.22\.0\.tgz"):
        helm.package("cert-manager", "v1.22.0", "https://charts.jetstack.io", cache)


def test_a_mirror_without_an_index_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=rf"pi-cluster:chartMirror: '{tmp_path}': .*has no index\.yaml"):
        parse({**raw_config(), "chartMirror": str(tmp_path)})


def test_without_a_mirror_releases_name_their_repository(pi_k3s: mockrun.Result) -> None:
    for reg in pi_k3s.by_type("kubernetes:helm.sh/v3:Release"):
        assert reg.plain_inputs["repositoryOpts"]["repo"].startswith("https://")
        assert not reg.plain_inputs["chart"].endswith(".tgz")


# -- ephemeralVolumes ---------------------------------------------------------------------------


def _stateful(result: mockrun.Result) -> list[mockrun.Registration]:
    """Every PVC registered through the volume registry and the NAS PersistentVolumes."""
    names = {f"{v.namespace}/{v.name}" for v in result.program["volumes"].volumes}
    pvcs = [
        r
        for r in result.by_type("kubernetes:core/v1:PersistentVolumeClaim")
        if f"{r.plain_inputs['metadata']['namespace']}/{r.plain_inputs['metadata']['name']}" in names
        or r.plain_inputs["spec"].get("volumeName")
    ]
    return pvcs + result.by_type("kubernetes:core/v1:PersistentVolume")


def test_the_house_keeps_every_stateful_volume_protected(pi_k3s: mockrun.Result) -> None:
    volumes = _stateful(pi_k3s)
    assert len(volumes) == 12
    assert all(r.protect for r in volumes)
    assert not any(
        "pi-cluster/ephemeral" in (r.plain_inputs["metadata"].get("annotations") or {}) for r in volumes
    )


def test_ephemeral_volumes_are_unprotected_and_say_why() -> None:
    run = mockrun.run(overrides={f"{NS}:ephemeralVolumes": REASON})
    volumes = _stateful(run)
    assert len(volumes) == 12
    for reg in volumes:
        assert not reg.protect, reg.key
        assert reg.plain_inputs["metadata"]["annotations"]["pi-cluster/ephemeral"] == REASON
    # The policy pack's stateful-pvc-protected accepts them as they are.
    policy = next(p for p in MANDATORY_POLICIES if p.name == "stateful-pvc-protected")
    for reg in volumes:
        if reg.type.endswith("PersistentVolumeClaim"):
            seen: list[str] = []
            args = _policy_args(reg)
            policy.validate(args, lambda message, urn=None, seen=seen: seen.append(message))  # type: ignore[arg-type]
            assert seen == [], reg.key


def _policy_args(reg: mockrun.Registration) -> Any:
    class Opts:
        protect = reg.protect

    class Args:
        resource_type = reg.type
        name = reg.name
        props = reg.plain_inputs
        opts = Opts()

    return Args()


@pytest.mark.parametrize("reason", ["e2e", "   ", ""])
def test_ephemeral_volumes_need_a_reason(reason: str) -> None:
    with pytest.raises(SettingsError, match=rf"pi-cluster:ephemeralVolumes: {reason!r} is not a reason"):
        parse({**raw_config(), "ephemeralVolumes": reason})


# -- ingress.cloudflareRecord ---------------------------------------------------------------------


def test_without_the_record_cloudflare_is_not_needed(stack_values: dict[str, Any]) -> None:
    run = mockrun.run(
        overrides=_ingress(stack_values, cloudflareRecord=False),
        secrets={f"{NS}:cloudflareApiToken": None, f"{NS}:cloudflareZoneId": None},
    )
    assert [
        r.key for r in run.registrations if r.type.startswith(("cloudflare:", "pulumi:providers:cloudflare"))
    ] == []
    # cert-manager still solves DNS-01 with the token from 1Password.
    token = run.manifest("ExternalSecret", "cloudflare-api-token", "cert-manager")
    assert token["spec"]["data"][0]["remoteRef"]["key"] == "cloudflare/api-token"


def test_with_the_record_both_cloudflare_secrets_are_required(pi_k3s: mockrun.Result) -> None:
    assert pi_k3s.by_type("cloudflare:index/dnsRecord:DnsRecord")
    with pytest.raises(SettingsError, match=r"pi-cluster:cloudflareZoneId: required secret is missing"):
        mockrun.run(secrets={f"{NS}:cloudflareZoneId": None})


def test_the_record_setting_is_a_boolean() -> None:
    raw = raw_config()
    raw["ingress"]["cloudflareRecord"] = "sometimes"
    with pytest.raises(SettingsError, match=r"pi-cluster:ingress\.cloudflareRecord: .*\(got 'sometimes'\)"):
        parse(raw)


# -- kubernetesPluginVersion -------------------------------------------------------------------


def test_the_plugin_version_goes_on_the_one_provider(pi_k3s: mockrun.Result) -> None:
    # Unset, the SDK asks for its own plugin (pulumi-plugin.json of pulumi_kubernetes).
    sdk = json.loads((Path(pulumi_kubernetes.__file__).parent / "pulumi-plugin.json").read_text())["version"]
    pinned = next(
        line.split("==", 1)[1].strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.startswith("pulumi-kubernetes==")
    )
    assert pi_k3s.get("pulumi:providers:kubernetes", "k3s-provider").version == sdk == pinned
    run = mockrun.run(overrides={f"{NS}:kubernetesPluginVersion": "4.25.0"})
    assert run.get("pulumi:providers:kubernetes", "k3s-provider").version == "4.25.0"
    # Every Kubernetes resource goes through that provider, so none asks for another plugin.
    k8s = [r for r in run.registrations if r.custom and r.type.startswith("kubernetes:")]
    assert {r.provider for r in k8s} == {"k3s-provider"}


@pytest.mark.parametrize("version", ["latest", "v4.25.0", "4.25"])
def test_a_plugin_version_must_be_an_exact_release(version: str) -> None:
    with pytest.raises(
        SettingsError, match=rf"pi-cluster:kubernetesPluginVersion: {version!r} is not a plugin version"
    ):
        parse({**raw_config(), "kubernetesPluginVersion": version})
