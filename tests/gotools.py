"""Go programs the tests build from pinned modules (tests/tools/<name>: go.mod + go.sum).

Built once per source digest into the ignored ``.cache/go-tools/`` under ``nice``; Go's own
build and module caches make a rebuild in a fresh clone cheap. Modules come from the Go module
proxy only (no ``direct`` fallback to a VCS) and the local toolchain is used as it is.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from tests.conftest import ROOT, require_tool

SOURCES = ROOT / "tests" / "tools"
CACHE = ROOT / ".cache" / "go-tools"


def build(name: str) -> Path:
    """Path of the built tool ``name``; builds it when its sources changed."""
    source = SOURCES / name
    digest = hashlib.sha256()
    for path in sorted(p for p in source.iterdir() if p.name in ("go.mod", "go.sum") or p.suffix == ".go"):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    binary = CACHE / f"{name}-{digest.hexdigest()[:16]}"
    if binary.is_file():
        return binary
    go = require_tool("go")
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = binary.with_suffix(".partial")
    env = {
        **os.environ,
        "GOPROXY": "https://proxy.golang.org",
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "-mod=readonly",
        "CGO_ENABLED": "0",
    }
    result = subprocess.run(
        ["nice", "-n", "10", go, "build", "-trimpath", "-o", str(partial), "."],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"building tests/tools/{name} failed:\n{result.stdout}{result.stderr}")
    partial.rename(binary)
    return binary
