"""A chart mirror: a Helm repository on disk (``index.yaml`` beside the chart packages), as
``helm repo index`` writes it. The one lookup the program (setting ``chartMirror``) and the
offline tools (``CHART_MIRROR``, tools/helm.py) share: the package of a chart version, its
sha256 checked against the index's ``digest``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import yaml


class MirrorError(ValueError):
    """The mirror lacks the chart version, or its package is missing or not the indexed one."""


def _index(index: Path) -> dict[str, Any]:
    data = yaml.load(index.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    if not isinstance(data, dict) or not isinstance(data.get("entries") or {}, dict):
        raise MirrorError(f"{index} is not a Helm repository index (no entries map)")
    return data


def index_of(folder: Path) -> Path:
    """``folder/index.yaml``, or MirrorError when the folder is not a Helm repository."""
    index = folder / "index.yaml"
    if not index.is_file():
        raise MirrorError(
            f"{folder} has no index.yaml (a Helm repository on disk as `helm repo index` writes it)"
        )
    return index


def from_environment() -> Path | None:
    """The mirror ``CHART_MIRROR`` names, resolved, or None when it is unset (the offline tools
    then use the charts' own repositories). MirrorError when the folder has no index.yaml."""
    value = os.environ.get("CHART_MIRROR", "").strip()
    if not value:
        return None
    folder = Path(value).resolve()
    try:
        index_of(folder)
    except MirrorError:
        raise MirrorError(f"CHART_MIRROR={value}: no index.yaml there (a Helm repository on disk)") from None
    return folder


def package(folder: Path, chart: str, version: str) -> Path:
    """The package of ``chart`` at ``version`` in the mirror at ``folder``.

    The index entry's first URL must be a file of the mirror (``helm repo index`` without
    ``--url`` writes the package's file name), and the file's sha256 must be the entry's
    ``digest`` (Helm's repo/chartrepo index: digest is the package's SHA-256).
    """
    index = index_of(folder)
    data = _index(index)
    entries = [e for e in (data.get("entries") or {}).get(chart) or () if str(e.get("version")) == version]
    if not entries:
        raise MirrorError(f"chart {chart} {version} is not in the mirror {index}")
    entry = entries[0]
    urls = entry.get("urls") or []
    if not urls or "://" in str(urls[0]) or str(urls[0]).startswith("/"):
        raise MirrorError(f"chart {chart} {version}: {index} names no package file beside it (urls {urls})")
    path = (folder / str(urls[0])).resolve()
    if not path.is_file():
        raise MirrorError(f"chart {chart} {version}: package {path} is missing")
    want = str(entry.get("digest") or "")
    if not want:
        raise MirrorError(f"chart {chart} {version}: {index} records no digest to check {path} against")
    got = hashlib.sha256(path.read_bytes()).hexdigest()  # 1 MB at most for the pinned charts
    if got != want:
        raise MirrorError(
            f"chart {chart} {version}: {path} does not match its digest in {index} (sha256 {got}, "
            f"index {want})"
        )
    return path
