"""Side by side: what a kubectl (or Flux) user runs for the same stack, on a fresh simulated
cluster, timed like `pulumi up`.

The same objects: the e2e stack's render (tools/render.py: rendered/manifests, and the Helm
releases with their values as resources.json records them, read as tools/charts.py reads
them). In the order an empty cluster needs: ``kubectl apply --server-side`` of every object of
a built-in API, then ``helm upgrade --install`` of each release (``--rollback-on-failure
--cleanup-on-fail --wait=legacy``: Helm 4's names for the program's atomic, cleanup-on-fail and
Helm 3's wait), then ``kubectl apply --server-side`` of the custom resources whose CRDs the
charts installed; then a wait until every workload applied is available, which is what
`pulumi up` awaits. The no-op repeat runs the same commands again.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from e2e.kube import Api
from tools import charts, render


def builtin_groups(api: Api) -> set[str]:
    """API groups a fresh cluster serves (before any CRD): "" is the core group."""
    return {""} | {g["name"] for g in api.get("/apis")["groups"]}


def split(manifests: Path, builtin: set[str]) -> tuple[list[Path], list[Path]]:
    """(objects of built-in APIs, custom resources), each in the render's file order."""
    plain, custom = [], []
    for path in sorted(manifests.rglob("*.yaml")):
        api_version = _api_version(path)
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        (plain if group in builtin else custom).append(path)
    return plain, custom


def _api_version(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("apiVersion:"):
            return line.split(":", 1)[1].strip()
    raise ValueError(f"{path}: no apiVersion")


def release_order(resources: list[dict[str, Any]]) -> list[charts.Release]:
    """The program's releases in an order its dependencies allow (a release after any release
    it depends on)."""
    releases = {r.resource: r for r in charts.releases(resources)}
    deps = {
        e["name"]: {d.split("::", 1)[1] for d in e.get("dependsOn") or [] if d.split("::", 1)[1] in releases}
        for e in resources
        if e["type"] == charts.RELEASE_TYPE
    }
    done: list[str] = []
    while len(done) < len(releases):
        ready = sorted(n for n in releases if n not in done and deps.get(n, set()) <= set(done))
        if not ready:
            raise ValueError(f"release dependencies form a cycle: {deps}")
        done += ready
    return [releases[n] for n in done]


def each(flag: str, values: list[Path]) -> list[str]:
    """``flag v1 flag v2 ...``"""
    return [word for v in values for word in (flag, str(v))]


class Timer:
    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []

    def run(self, what: str, argv: list[str], timeout: float = 600) -> None:
        start = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        seconds = round(time.monotonic() - start, 1)
        self.steps.append({"what": what, "seconds": seconds, "ok": proc.returncode == 0})
        if proc.returncode != 0:
            raise RuntimeError(f"{what}: exit {proc.returncode}: {proc.stderr.strip()[-2000:]}")


def apply_all(
    *,
    kubectl: str,
    helm: str,
    kubeconfig: Path,
    manifests: Path,
    resources: list[dict[str, Any]],
    builtin: set[str],
    wait_ready: Callable[[], None],
    timer: Timer,
) -> float:
    """One `apply` of the whole stack; returns its wall seconds."""
    start = time.monotonic()
    plain, custom = split(manifests, builtin)
    kube = [kubectl, f"--kubeconfig={kubeconfig}", "apply", "--server-side", "--field-manager=e2e-kubectl"]
    namespaces = [p for p in plain if p.name.startswith("Namespace-")]
    rest = [p for p in plain if p not in namespaces]
    timer.run("kubectl apply namespaces", [*kube, *each("-f", namespaces)])
    timer.run(f"kubectl apply {len(rest)} objects", [*kube, *each("-f", rest)])
    with tempfile.TemporaryDirectory(prefix="e2e-helm-") as tmp:
        for release in release_order(resources):
            files = []
            for i, text in enumerate(release.value_files):
                files.append(Path(tmp) / f"{release.name}-values-{i}.yaml")
                files[-1].write_text(text)
            files.append(Path(tmp) / f"{release.name}-values.json")
            files[-1].write_text(json.dumps(release.values, indent=2, sort_keys=True))
            source = (
                []
                if release.chart.endswith(".tgz")
                else ["--version", release.version, "--repo", release.repo]
            )
            argv = [
                helm, "upgrade", "--install", release.name, release.chart, *source,
                "--namespace", release.namespace, f"--kubeconfig={kubeconfig}",
                "--rollback-on-failure", "--cleanup-on-fail", "--wait=legacy", "--timeout=5m",
                *each("--values", files),
            ]  # fmt: skip
            timer.run(f"helm upgrade --install {release.name}", argv)
    if custom:
        timer.run(
            f"kubectl apply {len(custom)} custom resources",
            [*kube, *each("-f", custom)],
        )
    wait_ready()
    return round(time.monotonic() - start, 1)


def render_stack(result: Any, out: Path) -> list[dict[str, Any]]:
    """Write the e2e stack's render (as `make render` does) and return its resources.json."""
    render.write(result, out)
    return list(json.loads((out / "resources.json").read_text()))
