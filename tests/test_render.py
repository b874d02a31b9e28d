"""The offline render writes the three artifacts, stably, through the same code path as tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tools import mockrun, render


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_cli_render_writes_artifacts_and_is_byte_stable(tmp_path: Path, rendered_dir: Path) -> None:
    out = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, "-m", "tools.render", "--stack", "pi-k3s", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Total:" in proc.stdout and "Resources per component:" in proc.stdout
    for artifact in ("manifests", "resources.json", "outputs.json"):
        assert (out / artifact).exists(), artifact
    # A second run (in-process, the path the tests use) gives identical bytes.
    assert _tree(out) == _tree(rendered_dir)


def test_manifest_layout(rendered_dir: Path, pi_k3s: mockrun.Result) -> None:
    files = sorted(
        p.relative_to(rendered_dir / "manifests") for p in (rendered_dir / "manifests").rglob("*.yaml")
    )
    assert len(files) == len(pi_k3s.kubernetes_objects())
    assert Path("_cluster/Namespace-external-secrets.yaml") in files
    assert Path("external-secrets/Secret-onepassword-service-account.yaml") in files
    for f in files:
        text = (rendered_dir / "manifests" / f).read_text()
        assert text.startswith("apiVersion:"), f


def test_resources_json_shape(rendered_dir: Path) -> None:
    resources = json.loads((rendered_dir / "resources.json").read_text())
    assert resources, "no resources"
    for r in resources:
        assert {"type", "name", "parent", "provider", "dependsOn", "inputs"} <= set(r)
    store = next(r for r in resources if r["type"].endswith("ClusterSecretStore"))
    assert store["parent"] == "pi-cluster:secrets:Secrets::secrets"
    assert store["provider"] == "k3s-provider"
    assert "kubernetes:helm.sh/v3:Release::secrets-eso" in store["dependsOn"]
    token = next(r for r in resources if r["name"] == "secrets-onepassword-token")
    assert token["inputs"]["stringData"] == {"token": "[secret]"}


def test_outputs_json_masks_secrets(rendered_dir: Path) -> None:
    outputs = json.loads((rendered_dir / "outputs.json").read_text())
    assert set(outputs) >= {"urls", "dnsServer", "nodes", "kubeconfig"}
    assert outputs["kubeconfig"] == "[secret]"
    assert outputs["dnsServer"] == "192.168.1.55"
    assert outputs["nodes"]["pi3-worker-1"]["address"] == "192.168.1.53"


def test_summary_counts_every_resource(pi_k3s: mockrun.Result) -> None:
    text = render.summary(pi_k3s)
    total = sum(1 for r in pi_k3s.registrations if r.custom)
    assert f"Total: {total} resources" in text
    assert "pi-cluster:secrets:Secrets::secrets" in text
