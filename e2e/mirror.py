"""The chart mirror the e2e stack installs from: CHART_MIRROR's packages, each checked against
CHART_MIRROR's index (config/chart_mirror.py), with one change where a chart needs it to
install offline, recorded in the report.

The change: a ``values.schema.json`` whose ``$id`` is not the file itself. Helm resolves the
schema's relative ``$ref`` (bjw-s common 4.x, Immich's subchart: ``schemas/pod.json``) against
its ``$id``, through a file or an http(s) loader (helm.sh/helm/v3 v3.18.6, the Helm inside the
Kubernetes provider: pkg/chartutil/jsonschema.go ValidateAgainstSingleSchema). Upstream that
``$id`` is https://raw.githubusercontent.com/bjw-s-labs/helm-charts/...: every preview fetches
the schemas from GitHub. The mirror this project's CI uses carries
file:///tmp/charts/immich/charts/common/values.schema.json instead, a folder that does not
exist, and the install fails ("failing loading file:///tmp/charts/...pod.json"). Here the chart
is unpacked once into the cache and the ``$id`` points at that unpacked file, so the same
schemas are read from disk; the package is rebuilt with ``helm package`` and indexed with
``helm repo index`` (new digests, which the program checks as it checks any mirror).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import yaml

from config import chart_mirror


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        own = [str(value["$ref"])] if isinstance(value.get("$ref"), str) else []
        return own + [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


def _schemas_to_rebase(root: Path) -> list[tuple[Path, str]]:
    """(schema file, its $id) for every values.schema.json that refers to other files (a
    ``$ref`` not inside itself) through an ``$id`` that is not the file itself."""
    found = []
    for schema in sorted(root.rglob("values.schema.json")):
        data = json.loads(schema.read_text())
        if not isinstance(data, dict) or "$id" not in data or data["$id"] == schema.resolve().as_uri():
            continue
        if any(not ref.startswith("#") for ref in _refs(data)):
            found.append((schema, str(data["$id"])))
    return found


def derive(source: Path, folder: Path, helm: str) -> tuple[Path, list[dict[str, Any]]]:
    """The mirror made from ``source`` in ``folder``/repo (unpacked charts in ``folder``/src);
    returns the mirror and what was changed."""
    dest, src = folder / "repo", folder / "src"
    index = yaml.safe_load(chart_mirror.index_of(source).read_text()) or {}
    stamp = dest / ".source.sha256"
    digest = hashlib.sha256(
        (source / "index.yaml").read_bytes() + str(dest).encode() + Path(__file__).read_bytes()
    ).hexdigest()
    changes_file = dest / "changes.json"
    if stamp.is_file() and stamp.read_text() == digest and changes_file.is_file():
        return dest, list(json.loads(changes_file.read_text()))
    shutil.rmtree(folder, ignore_errors=True)
    dest.mkdir(parents=True)
    src.mkdir()
    changes: list[dict[str, Any]] = []
    for name, entries in sorted((index.get("entries") or {}).items()):
        for entry in entries:
            version = str(entry["version"])
            package = chart_mirror.package(source, name, version)
            unpacked = src / f"{name}-{version}"
            unpacked.mkdir()
            with tarfile.open(package, "r:gz") as archive:
                archive.extractall(unpacked, filter="data")
            (chart_dir,) = [p for p in unpacked.iterdir() if (p / "Chart.yaml").is_file()]
            rebased = _schemas_to_rebase(chart_dir)
            if not rebased:
                shutil.copyfile(package, dest / package.name)
                shutil.rmtree(unpacked)
                continue
            for schema, old in rebased:
                data = json.loads(schema.read_text())
                data["$id"] = schema.resolve().as_uri()
                schema.write_text(json.dumps(data, indent=2) + "\n")
                changes.append(
                    {
                        "chart": f"{name} {version}",
                        "file": str(schema.relative_to(chart_dir)),
                        "$id": {"was": old, "now": data["$id"]},
                    }
                )
            subprocess.run(
                [helm, "package", str(chart_dir), "--destination", str(dest)],
                check=True,
                capture_output=True,
                text=True,
            )
    subprocess.run([helm, "repo", "index", str(dest)], check=True, capture_output=True, text=True)
    changes_file.write_text(json.dumps(changes, indent=1) + "\n")
    stamp.write_text(digest)
    return dest, changes
