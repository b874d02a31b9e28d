"""Charts as they really render: every Helm release of every stack, templated and checked.

    python -m tools.charts [--out rendered/charts] [--variant pi-k3s ...]

For each variant (a stack, or a stack with one setting changed: pi-k3s with traefik) the program
runs under mocks and :func:`tools.render.write` writes ``<out>/<variant>/`` (manifests,
``resources.json``, ``outputs.json``). Every ``kubernetes:helm.sh/v3:Release`` is read back from
that ``resources.json`` (chart, version, repository, namespace, values, value files exactly as
the program passes them) and templated by helm (:mod:`tools.helm`) into
``<out>/<variant>/<release>/<namespace>/<Kind>-<name>.yaml``. Then every rendered object is
checked (:mod:`tools.chart_checks`) and ``<out>/report.json`` lists per variant and release the
``objects``, and what is ``invalid``, breaks ``pod_security``, differs from the capacity
declaration (``capacity_mismatches``) or from the NetworkPolicy model (``network``). Exit 1 when
any list but ``objects`` is non-empty.

The written chart objects are helm's output with one addition: the checkov waivers of
:data:`tools.chart_checks.CHECKOV_WAIVERS` as ``checkov.io/skipN`` annotations, so `make scan`
reads each waiver and its reason where checkov looks for them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools import batch

if __name__ == "__main__":  # one short batch run: before the SDK imports below (tools/batch.py)
    batch.collect_rarely()

from tools import chart_checks, helm, mockrun, render

ROOT = mockrun.ROOT
RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
STACK_FOLDERS = frozenset({"manifests"})  # what render.write puts beside the release folders


@dataclass(frozen=True)
class Variant:
    """A stack as shipped, or with some keys of one config section changed."""

    name: str
    stack: str
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)  # section -> {key: value}

    def overrides(self) -> dict[str, Any]:
        values, _ = mockrun.stack_config(self.stack)
        out: dict[str, Any] = {}
        for section, keys in self.changes.items():
            key = f"{mockrun.PROJECT}:{section}"
            out[key] = {**values[key], **keys}
        return out


VARIANTS = (
    Variant("pi-k3s", "pi-k3s"),
    Variant("dev", "dev"),
    Variant("pi-k3s-traefik", "pi-k3s", {"ingress": {"controller": "traefik"}}),
)


@dataclass(frozen=True)
class Release:
    """One Helm release as resources.json records the program's inputs."""

    resource: str  # the Pulumi resource name
    name: str
    chart: str
    version: str
    repo: str
    namespace: str
    values: dict[str, Any]
    value_files: tuple[str, ...]  # YAML texts, applied in order before ``values``

    @staticmethod
    def of(entry: dict[str, Any]) -> Release:
        inputs = entry["inputs"]
        texts = []
        for asset in inputs.get("valueYamlFiles") or ():
            if "text" in asset:
                texts.append(asset["text"])
            elif "path" in asset:
                texts.append((ROOT / asset["path"]).read_text())
            else:
                raise helm.HelmError(f"{entry['name']}: value file {sorted(asset)} is neither text nor path")
        values = inputs.get("values") or {}
        if mockrun.MASK in json.dumps(values) or mockrun.MASK in "".join(texts):
            raise helm.HelmError(
                f"release {entry['name']}: its values carry a secret; helm cannot template it"
            )
        return Release(
            resource=entry["name"],
            name=inputs["name"],
            chart=inputs["chart"],
            version=inputs["version"],
            repo=(inputs.get("repositoryOpts") or {}).get("repo", ""),
            namespace=inputs.get("namespace") or "default",
            values=values,
            value_files=tuple(texts),
        )


def releases(resources: list[dict[str, Any]]) -> list[Release]:
    found = [Release.of(r) for r in resources if r["type"] == RELEASE_TYPE]
    names = [r.name for r in found]
    clash = sorted({n for n in names if names.count(n) > 1} | (set(names) & STACK_FOLDERS))
    if clash:
        raise helm.HelmError(f"release names {clash} would share a folder under rendered/charts")
    return sorted(found, key=lambda r: r.name)


def template_release(release: Release, work: Path, cache: Path, kube_version: str) -> list[dict[str, Any]]:
    """helm's objects for one release (namespaced ones placed in the release namespace when the
    chart leaves the namespace out, as an install does)."""
    package = helm.package(release.chart, release.version, release.repo, cache)
    chart_dir = helm.unpack(package, work / "chart")
    files = []
    for i, text in enumerate(release.value_files):
        files.append(work / f"values-{i}.yaml")
        files[-1].write_text(text)
    files.append(work / "values.json")
    files[-1].write_text(json.dumps(release.values, indent=2, sort_keys=True))
    text = helm.template(release.name, chart_dir, release.namespace, files, kube_version=kube_version)
    return helm.documents(text)


def write_objects(folder: Path, objs: list[dict[str, Any]]) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    for obj in objs:
        path = folder / render.manifest_path(obj)
        if path.exists():
            raise helm.HelmError(f"two objects of one release render to {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render.manifest_document(obj))


def run_variant(
    variant: Variant, out: Path, cache: Path, used: set[tuple[str, str, str]]
) -> dict[str, dict[str, list[str]]]:
    """Render, template and check one variant; return its part of the report."""
    result = mockrun.run(variant.stack, overrides=variant.overrides())
    folder = out / variant.name
    render.write(result, folder)
    resources = json.loads((folder / "resources.json").read_text())
    settings = result.program["settings"]
    kube_version = settings.k3s.version
    raw: dict[str, list[dict[str, Any]]] = {}
    for release in releases(resources):
        with tempfile.TemporaryDirectory(prefix=f"chart-{release.name}-") as tmp:
            raw[release.name] = template_release(release, Path(tmp), cache, kube_version)
    crds = [o for objs in raw.values() for o in objs if o.get("kind") == "CustomResourceDefinition"]
    scoped = chart_checks.cluster_scoped(crds)
    namespaces = {r.name: r.namespace for r in releases(resources)}
    rendered = {name: chart_checks.place(objs, namespaces[name], scoped) for name, objs in raw.items()}
    stack = chart_checks.Stack.of(result, rendered, namespaces)
    report = chart_checks.check(stack)
    for name, objs in rendered.items():
        write_objects(folder / name, chart_checks.with_waivers(name, objs, used))
    for stale in sorted(p for p in folder.iterdir() if p.is_dir()):
        if stale.name not in rendered and stale.name not in STACK_FOLDERS:
            shutil.rmtree(stale)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "rendered" / "charts"))
    parser.add_argument("--variant", action="append", choices=[v.name for v in VARIANTS])
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = ROOT / "rendered" / ".chart-cache"
    start = time.monotonic()
    report: dict[str, Any] = {}
    used: set[tuple[str, str, str]] = set()
    try:
        for variant in VARIANTS:
            if args.variant and variant.name not in args.variant:
                continue
            report[variant.name] = run_variant(variant, out, cache, used)
    except helm.HelmError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    findings = chart_checks.findings(report)
    if not args.variant:  # every variant ran: a waiver no object needs is a stale one
        findings += [
            f"checkov waiver for {kind} {name} of release {release} matches no rendered object"
            for release, kind, name in sorted(set(chart_checks.CHECKOV_WAIVERS) - used)
        ]
    for line in chart_checks.summary(report):
        print(line)
    print(f"Wrote {out}/report.json ({time.monotonic() - start:.1f} s)")
    for line in findings:
        print(f"FAIL {line}", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    code = main()
    batch.skip_collections_at_exit()
    sys.exit(code)
