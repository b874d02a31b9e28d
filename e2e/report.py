"""e2e/out/report.json: what one `make e2e` run proved, and what it could not cover."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e.prepare import APISERVER_ARGS, REPO, Tools

NOT_COVERED = [
    {
        "what": "node bootstrap over SSH (K3sCluster)",
        "why": "pulumi-command's provider cannot be had from the Go module proxy (e2e/tools/README.md); "
        "the e2e stack runs existingCluster",
    },
    {
        "what": "the Cloudflare wildcard record",
        "why": "pulumi-cloudflare's provider cannot be had from the Go module proxy; the e2e stack has "
        "ingress.cloudflareRecord off",
    },
    {
        "what": "anything inside a container",
        "why": "no container runs; what an image does is covered by reading its source and by the real "
        "binaries Debian ships in the unit tests",
    },
]
CLUSTER_NOTES = {
    "admission": "Pod Security admission on (privileged unless a namespace's labels say otherwise, as K3s "
    "starts it), with LimitRanger and ResourceQuota; ValidatingAdmissionWebhook and "
    "MutatingAdmissionWebhook off: no webhook server runs",
    "containers": "none: kwok plays every kubelet; pods turn Running and Ready by kwok's default Stages and "
    "Job pods complete. No controller a chart installs runs (External Secrets, cert-manager, "
    "prometheus-operator, ingress-nginx, AutoKuma): their custom resources are stored, not acted on",
    "stand_ins": [
        "the local-path StorageClass as K3s creates it, and a stand-in for its provisioner that binds "
        "WaitForFirstConsumer claims the way local-path does (e2e/stand_ins.py)",
        "ingress-nginx's Ingress status: the controller's publish-service address, as its status sync "
        "writes it (Pulumi's Ingress await waits for it)",
    ],
    "node_addresses": "kwok gives every node 127.0.0.1 (the stack's 192.168.1.x addresses are data, never "
    "dialled); Endpoints of Services in front of hostNetwork pods are refused for that loopback address",
}


def requirement_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip()] = version.strip()
    return pins


def engine_section(tools: Tools, plugins: list[dict[str, str]]) -> dict[str, Any]:
    """report["engine"]: the CLI, the plugins it ran, and where they differ from the pins."""
    pins = requirement_pins()
    k8s = tools["pulumi-resource-kubernetes"]["version"]
    return {
        "pulumi": tools["pulumi"]["version"],
        "language_host": tools["pulumi-language-python"]["module_version"],
        "plugins": plugins,
        "sdk_pins": {k: v for k, v in pins.items() if k.startswith("pulumi")},
        "kubernetes_plugin": (
            f"the engine ran plugin kubernetes {k8s} (the e2e stack's kubernetesPluginVersion) while "
            f"requirements.txt pins the SDK pulumi-kubernetes {pins['pulumi-kubernetes']}: the Go module "
            "proxy refuses github.com/pulumi/pulumi-kubernetes/provider/v4"
            f"@v{pins['pulumi-kubernetes']} (403 Forbidden, 'This module version is not available'; "
            "e2e/tools/README.md) and serves only the commit tagged v4.25.0"
        ),
        "plugins_not_installed": {
            "command": f"pulumi-command {pins['pulumi-command']}: the proxy serves no "
            "github.com/pulumi/pulumi-command/provider version",
            "cloudflare": f"pulumi-cloudflare {pins['pulumi-cloudflare']}: the proxy refuses "
            f"github.com/pulumi/pulumi-cloudflare/provider/v6@v{pins['pulumi-cloudflare']}",
        },
        "plugin_acquisition": "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true: the language host reports "
        "every SDK in the venv (pulumi_command, pulumi_cloudflare, pulumi_kubernetes 4.34.2) and the engine "
        "would download the plugins it lacks before the update (pulumi/pulumi v3.274.1 "
        "pkg/engine/plugins.go ensurePluginsAreInstalled); with it set it downloads nothing, and since no "
        "resource, invoke or default provider of the e2e stack asks for them, nothing fails",
    }


def cluster_section(tools: Tools, nodes: list[Any]) -> dict[str, Any]:
    """report["cluster"]: the simulated cluster and its nodes as created."""
    shown = []
    for node in nodes:
        manifest = node.manifest()
        status = manifest["status"]
        shown.append(
            {
                "name": node.name,
                "labels": {k: v for k, v in manifest["metadata"]["labels"].items() if k != "type"},
                "taints": manifest["spec"].get("taints", []),
                "arch": status["nodeInfo"]["architecture"],
                "kubelet": status["nodeInfo"]["kubeletVersion"],
                "capacity": status["capacity"],
                "allocatable": status["allocatable"],
            }
        )
    return {
        "kubernetes": tools["kube-apiserver"]["version"],
        "apiserver_flags": APISERVER_ARGS,
        "nodes": shown,
        **CLUSTER_NOTES,
    }


@dataclass
class Report:
    """report.json as it fills up; ``failures`` decides the exit code."""

    data: dict[str, Any] = field(
        default_factory=lambda: {"started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    )
    failures: list[str] = field(default_factory=list)

    def step(self, name: str, seconds: float, changes: dict[str, int], error: str | None = None) -> None:
        entry: dict[str, Any] = {"ok": error is None, "seconds": seconds, "changes": changes}
        if error is not None:
            entry["error"] = error
            self.failures.append(f"step {name}: {error}")
        self.data.setdefault("steps", {})[name] = entry

    def fail(self, where: str, message: str) -> None:
        self.failures.append(f"{where}: {message}")

    def write(self, out: Path, seconds: float) -> None:
        from e2e.summary import markdown

        self.data["seconds"] = seconds
        self.data["ok"] = not self.failures
        self.data["failures"] = self.failures
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(self.data, indent=2) + "\n")
        (out / "summary.md").write_text(markdown(self.data))
