"""What `make e2e` needs before the first `pulumi` command: the built tools, the Kubernetes
plugin in the harness's PULUMI_HOME, the policy pack with its own venv, and simulated clusters
of the stack's nodes."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from e2e.cluster import Cluster, ClusterError
from e2e.cluster import Node as KwokNode
from e2e.kube import Api
from e2e.stand_ins import StandIns
from e2e.tools.build import install_plugins

REPO = Path(__file__).resolve().parent.parent
# No webhook server runs (no container does): the API server must not call the charts' webhooks.
APISERVER_ARGS = ["--disable-admission-plugins=ValidatingAdmissionWebhook,MutatingAdmissionWebhook"]
REQUIRED_TOOLS = (
    "pulumi", "pulumi-language-python", "pulumi-resource-kubernetes", "etcd", "kube-apiserver",
    "kube-controller-manager", "kube-scheduler", "kwok", "kubectl", "helm",
)  # fmt: skip

Tools = dict[str, dict[str, str]]


def load_tools(cache: Path) -> Tools:
    """e2e/.cache/tools.json (python3 -m e2e.tools.build) with every tool the run uses."""
    manifest = cache / "tools.json"
    if not manifest.is_file():
        raise SystemExit(f"e2e: {manifest} missing: run `make e2e-tools` first")
    tools: Tools = json.loads(manifest.read_text())
    missing = [t for t in REQUIRED_TOOLS if t not in tools]
    if missing:
        raise SystemExit(f"e2e: {manifest} has no {', '.join(missing)}: run `make e2e-tools`")
    return tools


def ensure_plugin(tools: Tools, home: Path) -> list[dict[str, str]]:
    """The built Kubernetes plugin installed in ``home`` (PULUMI_HOME) once; `plugin ls`."""
    env = dict(os.environ, PULUMI_HOME=str(home), PULUMI_SKIP_UPDATE_CHECK="true")
    want = tools["pulumi-resource-kubernetes"]["version"]

    def listed() -> list[dict[str, str]]:
        out = subprocess.run(
            [tools["pulumi"]["path"], "plugin", "ls", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return [{k: str(p[k]) for k in ("name", "kind", "version")} for p in json.loads(out or "[]")]

    if not any(p["name"] == "kubernetes" and p["version"] == want for p in listed()):
        install_plugins(tools, home)
    return listed()


def policy_pack(cache: Path, out: Path) -> Path:
    """The policy pack as `pulumi preview --policy-pack` runs it: its Python dependencies
    (policy/requirements.txt, held to requirements.txt's pins where they overlap) in a venv of
    its own under the cache, the pack's files copied unchanged but for PulumiPolicy.yaml's
    runtime option ``virtualenv``, which names that venv."""
    venv = cache / "policy-venv"
    requirements, constraints = REPO / "policy" / "requirements.txt", REPO / "requirements.txt"
    digest = hashlib.sha256(requirements.read_bytes() + constraints.read_bytes()).hexdigest()
    stamp = venv / ".requirements.sha256"
    if not stamp.is_file() or stamp.read_text() != digest:
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "-r", str(requirements), "-c", str(constraints)], check=True)
        stamp.write_text(digest)
    pack = out / "policy-pack" / "policy"
    shutil.rmtree(pack.parent, ignore_errors=True)
    shutil.copytree(REPO / "policy", pack, ignore=shutil.ignore_patterns("__pycache__"))
    spec = (pack / "PulumiPolicy.yaml").read_text()
    if "virtualenv: ../venv" not in spec:
        raise SystemExit(
            "e2e: policy/PulumiPolicy.yaml no longer says `virtualenv: ../venv`: update e2e/prepare.py"
        )
    (pack / "PulumiPolicy.yaml").write_text(spec.replace("virtualenv: ../venv", f"virtualenv: {venv}"))
    return pack


def kwok_nodes(settings: Any) -> list[KwokNode]:
    """One simulated Node per stack node: its name, the labels K3s and the stack give it, its
    taints, arm64, capacity from hardware and allocatable as the capacity proof assumes
    (hardware minus the guardrails' reserve for its class), the stack's K3s as its version."""
    from components.capacity import nodes_of

    return [
        KwokNode(
            name=node.name,
            labels=dict(info.labels),
            taints=[t.model_dump() for t in node.taints],
            cpu=str(node.hardware.cores),
            memory=node.hardware.memory,
            allocatable_cpu=f"{info.allocatable_cpu}m",
            allocatable_memory=_quantity(info.allocatable_memory),
            arch="arm64",
            kubelet_version=settings.k3s.version,
        )
        for node, info in zip(settings.nodes, nodes_of(settings), strict=True)
    ]


def _quantity(size: int) -> str:
    """Bytes as Kubernetes writes them: whole Mi where they are, else bytes."""
    return f"{size // 2**20}Mi" if size % 2**20 == 0 else str(size)


def inline_kubeconfig(path: Path) -> str:
    """A cluster's admin kubeconfig with its certificate files inlined (as K3s writes one)."""
    config = json.loads(path.read_text())
    for section, key in (("clusters", "cluster"), ("users", "user")):
        for entry in config[section]:
            body = entry[key]
            for name in ("certificate-authority", "client-certificate", "client-key"):
                if name in body:
                    body[f"{name}-data"] = base64.b64encode(Path(body.pop(name)).read_bytes()).decode()
    return json.dumps(config, indent=1) + "\n"


@contextlib.contextmanager
def simulated_cluster(
    workdir: Path, nodes: list[KwokNode], cache: Path
) -> Iterator[tuple[Cluster, Api, StandIns]]:
    """A cluster of ``nodes`` with what K3s adds (the local-path StorageClass) and the
    stand-ins running (e2e/stand_ins.py); always stopped on the way out."""
    shutil.rmtree(workdir, ignore_errors=True)
    cluster = Cluster(workdir, cache, extra_args={"kube-apiserver": APISERVER_ARGS})
    cluster.start(nodes)
    api = Api(cluster.kubeconfig)
    stand_ins = StandIns(api)
    try:
        stand_ins.install()
        stand_ins.start()
        yield cluster, api, stand_ins
    finally:
        stand_ins.stop()
        api.close()
        cluster.stop()


def dump(cluster: Cluster, path: Path) -> None:
    """What the cluster looked like when a step failed, beside the step's log."""
    parts = []
    for what in (
        ["get", "nodes,pods,pvc,pv,deploy,ds,sts,jobs,svc,ingress", "-A", "-o", "wide"],
        ["get", "events", "-A", "--sort-by=.lastTimestamp"],
        ["describe", "pods", "-A"],
    ):
        try:
            parts.append(f"$ kubectl {' '.join(what)}\n{cluster.kubectl(*what)}")
        except ClusterError as err:
            parts.append(f"$ kubectl {' '.join(what)}\n{err}")
    path.write_text("\n".join(parts))
